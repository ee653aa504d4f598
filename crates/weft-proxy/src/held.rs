//! The sections of its model a proxy holds (`weft_model::sections`): what
//! the control plane's next change is applied on top of. A change is
//! taken into a copy, and the copy becomes what is held only once the
//! model it makes is serving, so a refused change leaves the proxy
//! holding what it serves.

use std::collections::BTreeMap;

use prost::Message;
use weft_model::sections::{self, Owned, SectionKey, SectionKind};
use weft_model::wire::{SectionRef, Sections};
use weft_model::ProxyModel;

/// What a proxy holds: the version of its model and its sections.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub version: String,
    /// Each with its version.
    sections: BTreeMap<SectionKey, (String, Owned)>,
}

/// Why a change was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: String,
    /// It came on top of a version this proxy does not hold: all of the
    /// model is asked for.
    pub resync: bool,
}

impl Refusal {
    fn bad(error: String) -> Refusal {
        Refusal {
            error,
            resync: false,
        }
    }
}

fn key_of(r: &SectionRef) -> Result<SectionKey, String> {
    let kind = SectionKind::parse(&r.kind).ok_or_else(|| {
        format!(
            "a section of kind {:?}, which this weft does not know",
            r.kind
        )
    })?;
    Ok(SectionKey {
        kind,
        parent: r.parent.clone(),
        name: r.name.clone(),
    })
}

/// At most this many bad sections are named in one NACK.
const NAMED: usize = 3;

impl Held {
    pub fn sections(&self) -> usize {
        self.sections.len()
    }

    /// The model `payload` (encoded [`Sections`]) makes on top of what is
    /// held, and what would be held once it serves.
    pub fn take(&self, version: &str, payload: &[u8]) -> Result<(ProxyModel, Held), Refusal> {
        let change = Sections::decode(payload).map_err(|e| {
            Refusal::bad(format!("model {version}: its sections do not decode: {e}"))
        })?;
        if !change.full && change.base != self.version {
            return Err(Refusal {
                error: format!(
                    "model {version} is a change on top of {}, but this proxy holds {}",
                    change.base,
                    if self.version.is_empty() {
                        "nothing"
                    } else {
                        &self.version
                    }
                ),
                resync: true,
            });
        }
        let mut next = if change.full {
            BTreeMap::new()
        } else {
            self.sections.clone()
        };
        let mut bad: Vec<String> = Vec::new();
        for r in &change.removed {
            match key_of(r) {
                Ok(k) => {
                    next.remove(&k);
                }
                Err(e) => bad.push(e),
            }
        }
        for s in change.sections {
            let Some(r) = &s.key else {
                bad.push("a section without a key".into());
                continue;
            };
            let key = match key_of(r) {
                Ok(k) => k,
                Err(e) => {
                    bad.push(e);
                    continue;
                }
            };
            if weft_model::names::content_version_of(&s.json) != s.version {
                bad.push(format!(
                    "section {key}: its bytes are not its version {}",
                    s.version
                ));
                continue;
            }
            match sections::decode(key.kind, &s.json) {
                Ok(owned) => {
                    next.insert(key, (s.version, owned));
                }
                Err(e) => bad.push(format!("section {key}: {e}")),
            }
        }
        if !bad.is_empty() {
            let more = bad.len().saturating_sub(NAMED);
            bad.truncate(NAMED);
            return Err(Refusal::bad(format!(
                "model {version}: {}{}",
                bad.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            )));
        }
        // What is held now must be the model named: a change that found
        // the proxy holding other sections than the control plane thinks
        // is caught here.
        let made = sections::version_of(next.iter().map(|(k, (v, _))| (k, v.as_str())));
        if made != version {
            return Err(Refusal {
                error: format!(
                    "model {version}: the sections held with it make {made}, not {version}"
                ),
                resync: !change.full,
            });
        }
        let model = sections::assemble(next.iter().map(|(k, (_, o))| (k, o)))
            .map_err(|e| Refusal::bad(format!("model {version}: {e}")))?;
        Ok((
            model,
            Held {
                version: version.to_owned(),
                sections: next,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::wire::Section;

    fn head() -> Section {
        let json = br#"{"modelVersion":2,"proxy":{"kind":"sidecar","workload":"a","namespace":"default","labels":{},"serviceAccount":"a","spiffeId":"spiffe://cluster.local/ns/default/sa/a"}}"#;
        section("proxy", "", json)
    }

    fn section(kind: &str, name: &str, json: &[u8]) -> Section {
        Section {
            key: Some(SectionRef {
                kind: kind.into(),
                parent: String::new(),
                name: name.into(),
            }),
            version: weft_model::names::content_version_of(json),
            json: bytes::Bytes::copy_from_slice(json),
        }
    }

    fn model_sections() -> Vec<Section> {
        let security = serde_json::to_vec(&weft_model::Security::default()).unwrap();
        let telemetry = serde_json::to_vec(&weft_model::TelemetryConfig::default()).unwrap();
        vec![
            head(),
            section("security", "", &security),
            section("telemetry", "", &telemetry),
        ]
    }

    fn encode(full: bool, base: &str, sections: Vec<Section>, removed: Vec<SectionRef>) -> Vec<u8> {
        Sections {
            full,
            base: base.into(),
            sections,
            removed,
        }
        .encode_to_vec()
    }

    /// The version a set of sections makes, as the control plane names it.
    fn version(sections: &[Section]) -> String {
        let keys: BTreeMap<SectionKey, String> = sections
            .iter()
            .map(|s| (key_of(s.key.as_ref().unwrap()).unwrap(), s.version.clone()))
            .collect();
        sections::version_of(keys.iter().map(|(k, v)| (k, v.as_str())))
    }

    fn first() -> Held {
        let all = model_sections();
        let (_, held) = Held::default()
            .take(&version(&all), &encode(true, "", all, vec![]))
            .unwrap();
        held
    }

    #[test]
    fn a_change_on_top_of_another_version_asks_for_all() {
        let held = first();
        assert_eq!(held.sections(), 3);
        let wrong = held
            .take("v3", &encode(false, "v2", vec![], vec![]))
            .unwrap_err();
        assert!(wrong.resync, "{wrong:?}");
        assert!(wrong.error.contains("on top of v2"), "{}", wrong.error);
        assert!(
            wrong.error.contains(&format!("holds {}", held.version)),
            "{}",
            wrong.error
        );
    }

    /// A change that leaves the proxy holding other sections than the
    /// model it names (one it missed) is caught, and all is asked for.
    #[test]
    fn sections_that_do_not_make_the_named_model_ask_for_all() {
        let held = first();
        let mut all = model_sections();
        let extra = section("http", "", br#"{"pathNormalization":"NONE"}"#);
        all.push(extra.clone());
        // Named as the model with a section more, which the proxy never got.
        let mut named = all.clone();
        named.push(section("layout", "", b"{}"));
        let r = held
            .take(
                &version(&named),
                &encode(false, &held.version, vec![extra], vec![]),
            )
            .unwrap_err();
        assert!(r.resync, "{r:?}");
        assert!(r.error.contains("make"), "{}", r.error);
    }

    #[test]
    fn a_bad_section_is_named_and_nothing_changes() {
        let held = first();
        let base = held.version.clone();
        let bad = held
            .take(
                "v2",
                &encode(
                    false,
                    &base,
                    vec![section("cluster", "c", b"{\"name\":1}")],
                    vec![],
                ),
            )
            .unwrap_err();
        assert!(!bad.resync);
        assert!(bad.error.contains("section cluster c"), "{}", bad.error);
        let unknown = held
            .take(
                "v2",
                &encode(false, &base, vec![section("gizmo", "g", b"{}")], vec![]),
            )
            .unwrap_err();
        assert!(unknown.error.contains("\"gizmo\""), "{}", unknown.error);
        let mut forged = section("security", "", b"{}");
        forged.version = "0000000000000000".into();
        let forged = held
            .take("v2", &encode(false, &base, vec![forged], vec![]))
            .unwrap_err();
        assert!(forged.error.contains("not its version"), "{}", forged.error);
        // Removing the identity leaves no model.
        let rest: Vec<Section> = model_sections().into_iter().skip(1).collect();
        let gone = held
            .take(
                &version(&rest),
                &encode(
                    false,
                    &base,
                    vec![],
                    vec![SectionRef {
                        kind: "proxy".into(),
                        parent: String::new(),
                        name: String::new(),
                    }],
                ),
            )
            .unwrap_err();
        assert!(gone.error.contains("no proxy section"), "{}", gone.error);
        assert_eq!(held.version, base);
        assert!(Held::default().take("v", b"\xff\xff").is_err());
    }
}
