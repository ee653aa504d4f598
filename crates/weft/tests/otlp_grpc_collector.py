"""A real gRPC server (gRPC core, through Debian's python3-grpcio) taking
OTLP trace exports for the end-to-end tests. Each Export call's request
is written, undecoded, to OUT/N.bin with its metadata in OUT/N.json; the
test decodes it with the OpenTelemetry protobuf types. The answer is an
empty ExportTraceServiceResponse (zero bytes)."""
import json
import os
import sys
import threading
from concurrent import futures

import grpc

listen, out = sys.argv[1], sys.argv[2]
lock = threading.Lock()
count = [0]


def export(request, context):
    with lock:
        n = count[0]
        count[0] += 1
    meta = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
    with open(os.path.join(out, f"{n}.json.tmp"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(out, f"{n}.bin.tmp"), "wb") as f:
        f.write(request)
    os.rename(os.path.join(out, f"{n}.json.tmp"), os.path.join(out, f"{n}.json"))
    os.rename(os.path.join(out, f"{n}.bin.tmp"), os.path.join(out, f"{n}.bin"))
    return b""


handler = grpc.method_handlers_generic_handler(
    "opentelemetry.proto.collector.trace.v1.TraceService",
    {"Export": grpc.unary_unary_rpc_method_handler(export)},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
if server.add_insecure_port(listen) == 0:
    sys.exit(f"cannot listen on {listen}")
server.start()
print(f"collector listening on {listen}", flush=True)
server.wait_for_termination()
