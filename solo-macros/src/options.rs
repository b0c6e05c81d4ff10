//! The options of `#[solo::main(...)]` and `#[solo::test(...)]`: parsed from the attribute's
//! tokens, each checked against the macro it is given to, each error at the span of the option
//! or value that is wrong.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Token};

/// Which macro the options are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Main,
    Test,
}

impl Kind {
    pub fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[solo::main]",
            Kind::Test => "#[solo::test]",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Main => "debug, backend = \"mio\" | \"polling\", crate = \"path::to::solo\"",
            Kind::Test => {
                "debug, backend = \"mio\" | \"polling\", clock = \"manual\" | \"real\", \
                 timeout = \"30s\" | \"500ms\" | \"2m\" | \"none\", crate = \"path::to::solo\""
            }
        }
    }
}

/// The reactor backend asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Mio,
    Polling,
}

/// How long a test may run: `None` for no bound.
pub type Timeout = Option<std::time::Duration>;

/// A test's bound unless it gives one: generous, so that only a hang trips it on a slow machine.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Options {
    pub kind: Kind,
    /// `None`: as `SOLO_DEBUG` says.
    pub debug: Option<bool>,
    pub backend: Option<Backend>,
    pub manual_clock: bool,
    pub timeout: Timeout,
    /// The path to solo: `::solo` unless `crate = "..."` renames it.
    pub krate: syn::Path,
}

impl Options {
    pub fn parse(kind: Kind, args: TokenStream) -> syn::Result<Options> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
        let mut o = Options {
            kind,
            debug: None,
            backend: None,
            manual_clock: false,
            timeout: Some(DEFAULT_TIMEOUT),
            krate: syn::parse_quote!(::solo),
        };
        let mut seen: Vec<String> = Vec::new();
        let mut errors: Option<syn::Error> = None;
        for meta in metas {
            // Every option is checked, so that all the mistakes are reported at once.
            if let Err(e) = o.apply(&meta, &mut seen) {
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
            }
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(o),
        }
    }

    fn apply(&mut self, meta: &Meta, seen: &mut Vec<String>) -> syn::Result<()> {
        let kind = self.kind;
        let o = self;
        let path = meta.path();
        let name = match path.get_ident() {
            Some(i) => i.to_string(),
            None if path.is_ident("crate") => "crate".to_string(),
            None if path.segments.len() == 1 && path.leading_colon.is_none() => {
                path.segments[0].ident.to_string()
            }
            None => return Err(o.unknown(path, &quote_path(path))),
        };
        if seen.contains(&name) {
            return Err(syn::Error::new(
                path.span(),
                format!("`{name}` is given twice to {}", kind.attr()),
            ));
        }
        seen.push(name.clone());
        match (name.as_str(), meta) {
            ("debug", Meta::Path(_)) => o.debug = Some(true),
            ("debug", Meta::NameValue(nv)) => match lit(&nv.value) {
                Some(Lit::Bool(b)) => o.debug = Some(b.value),
                _ => return Err(value_error(&nv.value, "`debug` takes `true` or `false` (or nothing: `debug` alone turns debug mode on)")),
            },
            ("backend", Meta::NameValue(nv)) => {
                o.backend = Some(match str_value(&nv.value).as_deref() {
                    Some("mio") => Backend::Mio,
                    Some("polling") => Backend::Polling,
                    _ => {
                        return Err(value_error(
                            &nv.value,
                            "`backend` is \"mio\" or \"polling\"",
                        ))
                    }
                })
            }
            ("clock", Meta::NameValue(nv)) if kind == Kind::Test => {
                o.manual_clock = match str_value(&nv.value).as_deref() {
                    Some("manual") => true,
                    Some("real") => false,
                    _ => {
                        return Err(value_error(
                            &nv.value,
                            "`clock` is \"manual\" (the test gets its solo::ManualClock) or \"real\"",
                        ))
                    }
                }
            }
            ("timeout", Meta::NameValue(nv)) if kind == Kind::Test => {
                let parsed = str_value(&nv.value).map(|s| parse_timeout(&s));
                o.timeout = match parsed {
                    Some(Ok(t)) => t,
                    Some(Err(why)) => return Err(value_error(&nv.value, &why)),
                    None => {
                        return Err(value_error(
                            &nv.value,
                            "`timeout` is a string: \"30s\", \"500ms\", \"2m\", or \"none\"",
                        ))
                    }
                }
            }
            ("crate", Meta::NameValue(nv)) => {
                o.krate = match str_value(&nv.value).map(|s| syn::parse_str::<syn::Path>(&s)) {
                    Some(Ok(p)) => p,
                    _ => {
                        return Err(value_error(
                            &nv.value,
                            "`crate` is the path solo is reached by, as a string: crate = \"my_solo\"",
                        ))
                    }
                }
            }
            ("clock" | "timeout", _) if kind == Kind::Main => {
                return Err(syn::Error::new(
                    path.span(),
                    format!("`{name}` is an option of #[solo::test] only"),
                ))
            }
            ("debug", Meta::List(l)) => {
                return Err(syn::Error::new(
                    l.span(),
                    "`debug` takes `true` or `false` (or nothing: `debug` alone turns debug mode on)",
                ))
            }
            ("backend" | "clock" | "timeout" | "crate", _) => {
                return Err(syn::Error::new(
                    meta.span(),
                    format!("`{name}` takes a value: `{name} = ...` (options: {})", kind.expected()),
                ))
            }
            _ => return Err(o.unknown(path, &name)),
        }
        Ok(())
    }

    fn unknown(&self, path: &syn::Path, name: &str) -> syn::Error {
        syn::Error::new_spanned(
            path,
            format!(
                "unknown option `{name}` for {}; the options are: {}",
                self.kind.attr(),
                self.kind.expected()
            ),
        )
    }
}

fn quote_path(p: &syn::Path) -> String {
    quote::quote!(#p).to_string().replace(' ', "")
}

fn lit(e: &Expr) -> Option<&Lit> {
    match e {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn str_value(e: &Expr) -> Option<String> {
    match lit(e) {
        Some(Lit::Str(s)) => Some(s.value()),
        _ => None,
    }
}

fn value_error(value: &Expr, what: &str) -> syn::Error {
    syn::Error::new_spanned(value, what)
}

/// `"30s"`, `"500ms"`, `"2m"`, `"1.5s"` or `"none"`.
pub fn parse_timeout(s: &str) -> Result<Timeout, String> {
    let bad = || {
        format!(
            "bad timeout {s:?}: write a number with a unit, \"500ms\", \"30s\" or \"2m\", or \
             \"none\" for no bound"
        )
    };
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(bad());
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!(
            "bad timeout {s:?}: it must be more than zero (\"none\" for no bound)"
        ));
    }
    let secs = n * scale;
    if secs > 365.0 * 24.0 * 3600.0 {
        return Err(format!(
            "bad timeout {s:?}: over a year; write \"none\" for no bound"
        ));
    }
    Ok(Some(std::time::Duration::from_secs_f64(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;
    use std::time::Duration;

    fn err(kind: Kind, args: TokenStream) -> String {
        match Options::parse(kind, args) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(parse_timeout("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse_timeout("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_timeout("1.5s"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout(" 10 s "), Ok(Some(Duration::from_secs(10))));
        assert_eq!(parse_timeout("none"), Ok(None));
        for bad in [
            "",
            "30",
            "s",
            "ms",
            "-1s",
            "0s",
            "0ms",
            "NaNs",
            "infs",
            "1h",
            "2 minutes",
            "1e9m",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults() {
        let o = Options::parse(Kind::Test, quote!()).unwrap();
        assert!(o.debug.is_none() && !o.manual_clock && o.backend.is_none());
        assert_eq!(o.timeout, Some(DEFAULT_TIMEOUT));
        assert_eq!(quote_path(&o.krate), "::solo");
    }

    #[test]
    fn every_option() {
        let o = Options::parse(
            Kind::Test,
            quote!(
                debug,
                backend = "polling",
                clock = "manual",
                timeout = "2s",
                crate = "my::solo"
            ),
        )
        .unwrap();
        assert!(o.debug == Some(true) && o.manual_clock);
        assert_eq!(o.backend, Some(Backend::Polling));
        assert_eq!(o.timeout, Some(Duration::from_secs(2)));
        assert_eq!(quote_path(&o.krate), "my::solo");
        let o = Options::parse(Kind::Main, quote!(debug = false, backend = "mio")).unwrap();
        assert_eq!(o.debug, Some(false));
        assert_eq!(o.backend, Some(Backend::Mio));
        let o = Options::parse(Kind::Test, quote!(timeout = "none", clock = "real",)).unwrap();
        assert_eq!(o.timeout, None);
        assert!(!o.manual_clock);
    }

    #[test]
    fn misuse() {
        assert!(
            err(Kind::Main, quote!(verbose)).contains("unknown option `verbose` for #[solo::main]")
        );
        assert!(err(Kind::Main, quote!(a::b)).contains("unknown option `a::b`"));
        assert!(err(Kind::Main, quote!(clock = "manual"))
            .contains("`clock` is an option of #[solo::test] only"));
        assert!(err(Kind::Main, quote!(timeout = "1s")).contains("#[solo::test] only"));
        assert!(err(Kind::Test, quote!(backend = "epoll")).contains("\"mio\" or \"polling\""));
        assert!(err(Kind::Test, quote!(backend = mio)).contains("\"mio\" or \"polling\""));
        assert!(err(Kind::Test, quote!(backend)).contains("`backend` takes a value"));
        assert!(err(Kind::Test, quote!(clock = "fake")).contains("\"manual\""));
        assert!(err(Kind::Test, quote!(timeout = 30)).contains("is a string"));
        assert!(err(Kind::Test, quote!(timeout = "30")).contains("bad timeout"));
        assert!(err(Kind::Test, quote!(debug = "yes")).contains("`true` or `false`"));
        assert!(err(Kind::Test, quote!(debug(1))).contains("`true` or `false`"));
        assert!(err(Kind::Test, quote!(backend("mio"))).contains("`backend` takes a value"));
        assert!(err(Kind::Test, quote!(debug, debug)).contains("`debug` is given twice"));
        assert!(err(Kind::Test, quote!(crate = "not a path")).contains("`crate` is the path"));
    }
}
