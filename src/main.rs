use std::process::ExitCode;

use clap::Parser;
use flinkgate::cli::{Cli, Command};

// mimalloc: admission decisions allocate many small JSON nodes; it cuts
// their cost by about a third against glibc malloc (see README benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages for 10 ms and commits whole arenas up front;
/// after a 30 MiB extender body that is 30 MiB more resident for no use.
/// Purging at once and committing on demand halves the peak under the
/// largest extender requests (benches/extender_memory.py: 120 -> 67 MiB)
/// and lowers the idle RSS (25 -> 16 MiB). Option numbers are mimalloc.h's
/// `mi_option_e` (v2), which libmimalloc-sys does not name. mimalloc's own
/// environment variables (`MIMALLOC_PURGE_DELAY=10`, ...) still win.
fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (option, env) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY"),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: setting an option is a plain store that mimalloc
            // reads on its next decision; nothing else runs yet.
            unsafe { libmimalloc_sys::mi_option_set(option, 0) };
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    flinkgate::telemetry::init_logging(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => report(serve(args).await),
            Command::Check(args) => flinkgate::check::run(args).await,
            Command::Certs(args) => report(flinkgate::cli::certs(args)),
            Command::Crds(args) => report(flinkgate::cli::crds(args)),
            Command::Register(args) => report(flinkgate::register::run(args).await),
        }
    })
}

/// `flinkgate serve`: flags to a checked configuration, then the server.
async fn serve(args: flinkgate::cli::ServeArgs) -> anyhow::Result<()> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let config = flinkgate::server::Config::from_args(args, in_cluster)?;
    flinkgate::server::Server::new(config)?.run().await
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
