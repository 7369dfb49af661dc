//! The libtest-mimic front end for a `harness = false` test target.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hsm_core::Provider;
use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};

use crate::ctx::Ctx;
use crate::options::Options;
use crate::report::{IntoProvider, plan, run_one};

type Factory = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<Arc<dyn Provider>, String>>>>>;

struct Entry {
    label: String,
    factory: Factory,
    options: Options,
}

/// Runs the kit against one or more providers as a libtest-style test binary: each case
/// is a test named `<label>::<case>` (just `<case>` with an empty label), cases a provider
/// does not declare show as `ignored (<reason>)`, and the usual flags work (`--list`, a name
/// filter, `--exact`, `--skip`, `--test-threads`, `--format terse`, ...).
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn make_memory() -> Arc<dyn hsm_core::Provider> { Arc::new(hsm_local::LocalProvider::in_memory()) }
/// # fn make_file() -> Arc<dyn hsm_core::Provider> {
/// #     Arc::new(hsm_local::LocalProvider::open("/tmp/conformance.keystore", None).expect("keystore"))
/// # }
/// use hsm_conformance::{Options, Runner};
/// Runner::new()
///     .provider("memory", || async { make_memory() }, Options::new())
///     .provider("file", || async { make_file() }, Options::new().key_prefix("file"))
///     .run();
/// ```
#[derive(Default)]
pub struct Runner {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.entries.iter().map(|e| e.label.as_str()).collect();
        f.debug_struct("Runner").field("providers", &labels).finish()
    }
}

impl Runner {
    /// A runner with no providers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider made by `factory` (called once, on the runner's tokio runtime),
    /// its cases named `<label>::<case>`.
    #[must_use]
    pub fn provider<F, Fut, P>(mut self, label: impl Into<String>, factory: F, options: Options) -> Self
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = P> + 'static,
        P: IntoProvider + 'static,
    {
        let factory: Factory = Box::new(move || Box::pin(async move { factory().await.into_provider() }));
        self.entries.push(Entry { label: label.into(), factory, options });
        self
    }

    /// Parses the command line, runs, deletes the keys each run created, and exits the
    /// process with libtest's exit code.
    pub fn run(self) -> ! {
        let args = Arguments::from_args();
        self.run_with_args(&args).exit()
    }

    /// Like [`run`](Self::run) with explicit arguments, returning the conclusion instead
    /// of exiting.
    pub fn run_with_args(self, args: &Arguments) -> Conclusion {
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let msg = format!("could not start a tokio runtime: {e}");
                return libtest_mimic::run(args, vec![Trial::test("setup", move || Err(msg.into()))]);
            }
        };
        let mut trials = Vec::new();
        let mut contexts = Vec::new();
        for Entry { label, factory, options } in self.entries {
            let named =
                |case: &str| if label.is_empty() { case.to_owned() } else { format!("{label}::{case}") };
            let made = runtime.block_on(factory()).and_then(|p| {
                let ctx = Ctx::new(p.clone(), &options).map_err(|f| f.to_string())?;
                Ok((p, ctx))
            });
            let (provider, ctx) = match made {
                Ok(made) => made,
                Err(msg) => {
                    trials.push(Trial::test(named("setup"), move || Err(msg.into())));
                    continue;
                }
            };
            for (case, reason) in plan(provider.capabilities(), &options) {
                let name = named(&case.name);
                let (handle, provider, ctx, options) =
                    (runtime.handle().clone(), provider.clone(), ctx.clone(), options.clone());
                trials.push(Trial::ignorable_test(name, move || {
                    if let Some(reason) = reason {
                        return Ok(Completion::ignored_with(reason));
                    }
                    handle
                        .block_on(run_one(&case, provider, ctx, &options))
                        .map(|()| Completion::Completed)
                        .map_err(Failed::from)
                }));
            }
            if options.cleans_up() {
                contexts.push(ctx);
            }
        }
        let conclusion = libtest_mimic::run(args, trials);
        for ctx in contexts {
            let created = ctx.created_keys().len();
            let problems = runtime.block_on(ctx.cleanup());
            if !problems.is_empty() {
                eprintln!(
                    "hsm-conformance: could not delete {} of the {created} keys this run created ({}-*):",
                    problems.len(),
                    ctx.run_prefix()
                );
                for p in problems {
                    eprintln!("  {p}");
                }
            }
        }
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        conclusion
    }
}

/// Runs the kit against the provider `factory` makes, as the `main` of a
/// `harness = false` test target, and exits with libtest's exit code.
///
/// ```no_run
/// // tests/conformance.rs, with `[[test]] name = "conformance" harness = false`
/// use std::sync::Arc;
/// # mod my_provider {
/// #     // Stands in for your crate's provider.
/// #     pub struct MyProvider;
/// #     impl MyProvider {
/// #         pub async fn connect() -> hsm_core::Result<std::sync::Arc<dyn hsm_core::Provider>> {
/// #             Ok(std::sync::Arc::new(hsm_local::LocalProvider::in_memory()))
/// #         }
/// #     }
/// # }
/// use hsm_conformance::Options;
///
/// fn main() {
///     hsm_conformance::run(
///         || async { my_provider::MyProvider::connect().await },
///         Options::new().ignore("rotate::*", "the emulator lacks RotateKeyOnDemand"),
///     )
/// }
/// ```
pub fn run<F, Fut, P>(factory: F, options: Options) -> !
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = P> + 'static,
    P: IntoProvider + 'static,
{
    Runner::new().provider("", factory, options).run()
}
