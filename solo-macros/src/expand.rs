//! The checks on the annotated fn and the fn the macros write in its place.
//!
//! `async fn name(args) -> T { body }` becomes `fn name() -> T { <solo>::macro_support::Config
//! ...run::<T, _>(async move { body }) }`: the body runs as the main future of a new loop, with
//! solo's own shutdown afterwards (`solo::run`'s). The output type is named in the call so that
//! `?` in the body knows what it converts into.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use crate::options::{Backend, Kind, Options};

/// The macro's output for `args` and `item`: the new fn, or the errors found (all of them: the
/// options' and the fn's).
pub fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            // Not a fn at all: the compiler's own error on the item comes with ours.
            let msg = format!("{} goes on an `async fn`", kind.attr());
            let mut err = syn::Error::new(Span::call_site(), msg);
            err.combine(e);
            return err.to_compile_error();
        }
    };
    let options = Options::parse(kind, args);
    let checked = check(kind, options.as_ref().ok(), &func);
    match (options, checked) {
        (Ok(o), Ok(clock)) => generate(&o, func, clock),
        (o, c) => {
            let mut errors = o.err().into_iter().chain(c.err());
            let mut all = errors.next().expect("one of the two failed");
            for e in errors {
                all.combine(e);
            }
            failed(kind, &func, all)
        }
    }
}

/// What stands in for the fn when it is misused: the errors, and for a `main` an empty `main`,
/// so that the compiler adds no "no main" or "main cannot be async" errors to ours.
fn failed(kind: Kind, func: &ItemFn, err: syn::Error) -> TokenStream {
    let errors = err.to_compile_error();
    if kind == Kind::Main && func.sig.ident == "main" {
        quote!(#errors fn main() {})
    } else {
        errors
    }
}

/// The test's clock argument (`clock: solo::ManualClock`), if it has one.
struct ClockArg {
    pat: Box<syn::Pat>,
    ty: Box<syn::Type>,
}

/// Every misuse of the fn, each at its own span; `options` is `None` when they did not parse
/// (the arguments are then checked as if no clock was asked for... unless they are the clock).
fn check(kind: Kind, options: Option<&Options>, func: &ItemFn) -> syn::Result<Option<ClockArg>> {
    let attr = kind.attr();
    let sig = &func.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    let what = match kind {
        Kind::Main => "the program's entry point",
        Kind::Test => "the test",
    };
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "{attr} needs an `async fn`: it runs the fn's body on a solo event loop as \
                 {what}; write `async fn {}`",
                sig.ident
            ),
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            u,
            format!("{attr} cannot go on an `unsafe fn`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("{attr} cannot go on an `extern` fn"),
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            format!("{attr} cannot go on a `const fn`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        // The whole of `<...> where ...`, as far as the compiler lets a span reach.
        let generics = &sig.generics;
        let where_clause = &generics.where_clause;
        errors.push(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            format!(
                "{attr} cannot go on a generic fn: {what} is called with no type arguments; \
                 move the generic code into a fn that this one calls"
            ),
        ));
    }
    if kind == Kind::Test {
        if let Some(a) = func.attrs.iter().find(|a| a.path().is_ident("test")) {
            errors.push(syn::Error::new_spanned(
                a,
                "remove this #[test]: #[solo::test] adds it (with two, the test would be \
                 registered twice)",
            ));
        }
    }
    let manual = options.is_some_and(|o| o.manual_clock);
    let mut clock = None;
    for (i, input) in sig.inputs.iter().enumerate() {
        let err = match (kind, input) {
            (Kind::Main, _) => Some(
                "#[solo::main] takes a fn with no arguments: read the command line with \
                 std::env::args() inside it"
                    .to_string(),
            ),
            (Kind::Test, FnArg::Receiver(_)) => {
                Some("#[solo::test] cannot go on a method (a fn with `self`)".to_string())
            }
            (Kind::Test, FnArg::Typed(_)) if !manual => Some(
                "a #[solo::test] fn takes no arguments, except its clock: with \
                 #[solo::test(clock = \"manual\")], write `async fn name(clock: solo::ManualClock)`"
                    .to_string(),
            ),
            (Kind::Test, FnArg::Typed(_)) if i > 0 => Some(
                "a #[solo::test(clock = \"manual\")] fn takes one argument, its \
                 solo::ManualClock"
                    .to_string(),
            ),
            (Kind::Test, FnArg::Typed(t)) => {
                clock = Some(ClockArg {
                    pat: t.pat.clone(),
                    ty: t.ty.clone(),
                });
                None
            }
        };
        if let Some(msg) = err {
            if kind == Kind::Main {
                // One error for the whole list.
                errors.push(syn::Error::new_spanned(&sig.inputs, msg));
                break;
            }
            errors.push(syn::Error::new_spanned(input, msg));
        }
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            format!("{attr} cannot go on a variadic fn"),
        ));
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(clock),
        Some(mut first) => {
            for e in errors {
                first.combine(e);
            }
            Err(first)
        }
    }
}

/// Whether `tokens` contain `impl` (an `impl Trait` output, which a turbofish cannot name).
fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

fn generate(o: &Options, func: ItemFn, clock: Option<ClockArg>) -> TokenStream {
    let krate = &o.krate;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ident = &sig.ident;
    let output = &sig.output;
    let output_ty = match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => t.to_token_stream(),
    };
    let span = block.span();
    let config = {
        let name = ident.to_string();
        let mut c = match o.kind {
            Kind::Main => quote!(#krate::macro_support::Config::main(#name)),
            Kind::Test => quote! {
                #krate::macro_support::Config::test(::core::concat!(
                    ::core::module_path!(), "::", #name
                ))
            },
        };
        if let Some(d) = o.debug {
            c.extend(quote!(.debug(#d)));
        }
        match o.backend {
            Some(Backend::Mio) => c.extend(quote!(.backend(#krate::Backend::Mio))),
            Some(Backend::Polling) => c.extend(quote!(.backend(#krate::Backend::Polling))),
            None => {}
        }
        if o.manual_clock {
            c.extend(quote!(.manual_clock()));
        }
        if o.kind == Kind::Test {
            c.extend(match o.timeout {
                Some(t) => {
                    let nanos = t.as_nanos() as u64;
                    quote!(.timeout(::core::option::Option::Some(
                        ::core::time::Duration::from_nanos(#nanos)
                    )))
                }
                None => quote!(.timeout(::core::option::Option::None)),
            });
        }
        c
    };
    // With the output type named, `?` in the body knows its target; an `impl Trait` output
    // cannot be named there, and is left to inference.
    let known = !mentions_impl(output_ty.clone());
    let run = match clock {
        None => {
            let turbofish = known.then(|| quote!(::<#output_ty, _>));
            quote_spanned! {span=>
                #config.run #turbofish(async move #block)
            }
        }
        Some(ClockArg { pat, ty }) => {
            let turbofish = known.then(|| quote!(::<#output_ty, _, _>));
            quote_spanned! {span=>
                #config.run_with_clock #turbofish(|__solo_clock| async move {
                    let #pat: #ty = __solo_clock;
                    #block
                })
            }
        }
    };
    let test_attr = (o.kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
    quote! {
        #test_attr
        #(#attrs)*
        #vis fn #ident() #output {
            #run
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(kind: Kind, args: TokenStream, item: TokenStream) -> String {
        expand(kind, args, item).to_string()
    }

    #[test]
    fn a_good_main_becomes_a_plain_fn() {
        let out = expand(
            Kind::Main,
            quote!(),
            quote!(
                async fn main() -> u8 {
                    1
                }
            ),
        )
        .to_string();
        assert!(out.starts_with("fn main () -> u8"), "{out}");
        assert!(
            out.contains(":: solo :: macro_support :: Config :: main (\"main\")"),
            "{out}"
        );
        assert!(out.contains("run :: < u8 , _ >"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn a_good_test_gets_test_and_its_options() {
        let out = expand(
            Kind::Test,
            quote!(
                debug,
                backend = "polling",
                clock = "manual",
                crate = "other"
            ),
            quote!(
                #[should_panic]
                async fn t(c: other::ManualClock) {}
            ),
        )
        .to_string();
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test] # [should_panic] fn t ()"),
            "{out}"
        );
        for part in [
            "other :: macro_support :: Config :: test",
            ". debug (true)",
            ". backend (other :: Backend :: Polling)",
            ". manual_clock ()",
            ". timeout (:: core :: option :: Option :: Some",
            "run_with_clock :: < () , _ , _ > (| __solo_clock | async move { let c : other :: ManualClock = __solo_clock ;",
        ] {
            assert!(out.contains(part), "{part} missing from {out}");
        }
    }

    #[test]
    fn an_impl_trait_output_is_left_to_inference() {
        let out = expand(
            Kind::Main,
            quote!(),
            quote!(
                async fn main() -> impl std::process::Termination {}
            ),
        )
        .to_string();
        assert!(out.contains(". run (async move"), "{out}");
    }

    #[test]
    fn misuse_is_reported_all_at_once() {
        let out = errors(
            Kind::Main,
            quote!(bogus),
            quote!(
                fn main<T>(x: T) {}
            ),
        );
        for part in [
            "unknown option `bogus`",
            "needs an `async fn`",
            "generic fn",
            "no arguments",
        ] {
            assert!(out.contains(part), "{part} missing from {out}");
        }
        // A stand-in main, so the compiler adds no errors of its own.
        assert!(out.ends_with("fn main () { }"), "{out}");
        let out = errors(
            Kind::Test,
            quote!(),
            quote!(
                #[test]
                async fn t(&self, x: u8) {}
            ),
        );
        for part in [
            "remove this #[test]",
            "cannot go on a method",
            "takes no arguments, except its clock",
        ] {
            assert!(out.contains(part), "{part} missing from {out}");
        }
        let out = errors(
            Kind::Test,
            quote!(clock = "manual"),
            quote!(
                async fn t(a: u8, b: u8) {}
            ),
        );
        assert!(
            out.contains("takes one argument, its solo::ManualClock"),
            "{out}"
        );
        let out = errors(
            Kind::Test,
            quote!(),
            quote!(
                struct S;
            ),
        );
        assert!(out.contains("goes on an `async fn`"), "{out}");
        let out = errors(
            Kind::Test,
            quote!(),
            quote!(
                async unsafe fn t() {}
            ),
        );
        assert!(out.contains("`unsafe fn`"), "{out}");
    }
}
