//! `weft`: one binary for the whole mesh. Each subcommand lives in its own
//! module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod allocator;
mod cmd;
mod fd_limit;
mod http_get;
mod output;
mod sample;
mod sched;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "A service mesh that speaks the Istio YAML you already have"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole mesh on this machine: control plane, sidecars, gateways, workloads.
    Up(cmd::up::Args),
    /// Run only the control plane (model stream and admin API) for proxies run elsewhere.
    #[command(name = "control-plane")]
    ControlPlane(cmd::control_plane::Args),
    /// Show the running mesh: components, ports, proxies' sync state.
    Status(cmd::status::Args),
    /// Apply resources to the running mesh (replaces same-named ones from files).
    Apply(cmd::resources::ApplyArgs),
    /// List resources of a kind, or print one.
    Get(cmd::resources::GetArgs),
    /// Delete an applied resource.
    Delete(cmd::resources::DeleteArgs),
    /// A canary's decisions, and manual control: promote, abort, retry,
    /// pause, resume.
    Canary(cmd::canary::Args),
    /// Print a running workload's log (or its sidecar's with --proxy).
    Logs(cmd::logs::Args),
    /// Run a command in a running workload's pod (`weft up --capture`).
    Exec(cmd::exec::Args),
    /// Check resources one by one: syntax, schema and Istio's validation rules.
    Validate(cmd::validate::Args),
    /// Check resources together: references, conflicts and scoping, with
    /// Istio's analyzer codes.
    Analyze(cmd::analyze::Args),
    /// Print the model a proxy receives (offline, from files).
    #[command(name = "proxy-config", alias = "pc")]
    ProxyConfig(cmd::proxy_config::Args),
    /// Show a running proxy's workload certificate and trusted roots.
    X509(cmd::x509::Args),
    /// The mesh's certificate authority: rotate the root, show its state.
    Ca(cmd::ca::Args),
    /// Open the dashboard: the live service graph, details, validations.
    Dashboard(cmd::dashboard::Args),
    /// Run one proxy from a compiled model file, the control plane's
    /// stream, or (`--bootstrap`) as a host or VM joining the mesh.
    Proxy(Box<cmd::proxy::Args>),
    /// Hosts and VMs: write the files one joins the mesh with.
    Workload(cmd::workload::Args),
    /// Run a workload command for `weft up`, dying with it.
    #[command(name = "exec-child", hide = true)]
    ExecChild(cmd::exec_child::Args),
    /// Run a sample application built into weft.
    #[command(name = "sample-app")]
    SampleApp(cmd::sample_app::Args),
}

fn main() -> ExitCode {
    allocator::settle();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    die_with_parent();
    fd_limit::raise();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ExecChild(args) => cmd::exec_child::run(&args),
        Command::Up(args) => cmd::up::run(&args),
        Command::ControlPlane(args) => cmd::control_plane::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Logs(args) => cmd::logs::run(&args),
        Command::Exec(args) => cmd::exec::run(&args),
        Command::Workload(args) => cmd::workload::run(&args),
        Command::Apply(args) => cmd::resources::apply(&args),
        Command::Get(args) => cmd::resources::get_cmd(&args),
        Command::Delete(args) => cmd::resources::delete(&args),
        Command::Canary(args) => cmd::canary::run(&args),
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Analyze(args) => cmd::analyze::run(&args),
        Command::ProxyConfig(args) => cmd::proxy_config::run(&args),
        Command::X509(args) => cmd::x509::run(&args),
        Command::Ca(args) => cmd::ca::run(&args),
        Command::Dashboard(args) => cmd::dashboard::run(&args),
        Command::Proxy(args) => cmd::proxy::run(&args),
        Command::SampleApp(args) => cmd::sample_app::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Processes `weft up` starts carry `WEFT_DIE_WITH_PARENT`: ask the kernel
/// to send SIGTERM when `weft up` dies, however it dies, so a mesh never
/// leaves orphans holding its ports.
fn die_with_parent() {
    if std::env::var_os("WEFT_DIE_WITH_PARENT").is_none() {
        return;
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        eprintln!("weft: cannot follow the parent's lifetime: {e}");
    }
    // The parent may have died before the line above.
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        std::process::exit(0);
    }
}
