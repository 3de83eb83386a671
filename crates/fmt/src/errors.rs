//! [`error_chain`]: an error with its causes on one line.

use std::error::Error;

/// `e` and each of its sources, `: `-separated: a library error names its
/// cause once, as its `source`, not in its own message, so the top-level
/// message alone can be as little as "client error (Connect)".
pub fn error_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_cause_follows_its_error_once() {
        let alone = Layer("could not send", None);
        assert_eq!(error_chain(&alone), "could not send");
        let deep = Layer(
            "client error (Connect)",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&deep),
            "client error (Connect): tcp connect error: Connection refused"
        );
    }
}
