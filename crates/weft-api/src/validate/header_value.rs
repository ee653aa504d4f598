//! Envoy's header value syntax, as Istio's webhook checks it: literal
//! text, `%%` for a percent sign, and `%VARIABLE%` or
//! `%VARIABLE(["arg", …])%` for a value Envoy fills in. No control
//! characters other than tab.

/// Where the scan is inside a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Literal,
    VariableName,
    ExpectArray,
    ExpectString,
    InString,
    ExpectDelimiterOrEnd,
    ExpectArgsEnd,
    ExpectVariableEnd,
}

/// Why `value` is not a header value Envoy takes.
pub fn check(value: &str) -> Result<(), String> {
    if let Some(c) = value.chars().find(|c| c.is_ascii_control() && *c != '\t') {
        return Err(format!("it holds the control character {c:?}"));
    }
    let bytes = value.as_bytes();
    let mut state = State::Literal;
    let mut i = 0;
    while i < bytes.len() {
        let ch = bytes[i];
        let next = bytes.get(i + 1).copied();
        state = match state {
            State::Literal if ch != b'%' => State::Literal,
            State::Literal => match next {
                None => return Err("it ends with an unescaped %".into()),
                Some(b'%') => {
                    i += 1;
                    State::Literal
                }
                Some(_) => State::VariableName,
            },
            State::VariableName => match ch {
                b'%' => State::Literal,
                b'(' => State::ExpectArray,
                _ => State::VariableName,
            },
            State::ExpectArray => match ch {
                b'[' => State::ExpectString,
                b' ' => State::ExpectArray,
                _ => State::InString,
            },
            State::ExpectDelimiterOrEnd => match ch {
                b',' => State::ExpectString,
                b']' => State::ExpectArgsEnd,
                b' ' => State::ExpectDelimiterOrEnd,
                _ => return Err("a variable's arguments expect ',' or ']'".into()),
            },
            State::ExpectString => match ch {
                b'"' => State::InString,
                b' ' => State::ExpectString,
                _ => return Err("a variable's arguments are quoted strings".into()),
            },
            State::InString => match ch {
                b'\\' if next.is_none() => {
                    return Err("a backslash ends a variable's argument".into())
                }
                b'\\' => {
                    i += 1;
                    State::InString
                }
                b')' => State::ExpectVariableEnd,
                b'"' => State::ExpectDelimiterOrEnd,
                _ => State::InString,
            },
            State::ExpectArgsEnd => match ch {
                b')' => State::ExpectVariableEnd,
                b' ' => State::ExpectArgsEnd,
                _ => return Err("a variable's arguments expect a closing ')'".into()),
            },
            State::ExpectVariableEnd => match ch {
                b'%' => State::Literal,
                b' ' => State::ExpectVariableEnd,
                _ => return Err("a variable expects its closing %".into()),
            },
        };
        i += 1;
    }
    if state != State::Literal {
        return Err("a %VARIABLE% is not closed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn envoys_header_value_syntax() {
        for ok in [
            "",
            "plain",
            "100%%",
            "%HOSTNAME%",
            "a %START_TIME(%s)% b",
            "%REQ([\"x-a\", \"x-b\"])%",
            "%UPSTREAM_METADATA([\"a\",\"b\"])%",
            "tab\tok",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for bad in [
            "abcd%oijasodifj",
            "100%",
            "%HOSTNAME",
            "%START_TIME%%",
            "%VAR([\"a\" x])%",
            "%VAR([x])%",
            "a\u{1}b",
            "a\nb",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
