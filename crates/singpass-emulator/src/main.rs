//! The `singpass-emulator` command: the strict emulator alone, for offline development, until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use singpass_emulator::{read_public_jwks, serve_forever, EmulatorConfig};

/// Runs the strict Singpass emulator (Myinfo v4 under /com/v4, FAPI 2.0 under /fapi, CIBA at
/// the root); its users consent at /com/v4/authorize and /fapi/auth without a browser.
#[derive(Parser)]
#[command(name = "singpass-emulator", version)]
struct Cli {
    /// Where it listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The client id it accepts.
    #[arg(long)]
    client_id: String,
    /// The client's PUBLIC JWKS file (e.g. from `myinfo-proxy keygen`: public-jwks.json).
    #[arg(long)]
    client_jwks: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text when piped, so that scripts can read the addresses it logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let jwks = read_public_jwks(&cli.client_jwks).map_err(|e| e.to_string())?;
    let config = EmulatorConfig::new(cli.client_id, jwks);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::select! {
            served = serve_forever(config, cli.listen) => {
                served.map_err(|e| format!("cannot listen on {}: {e}", cli.listen))
            }
            () = shutdown_signal() => Ok(()),
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix (as a container runtime stops it).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            // No SIGTERM handler: Ctrl-C still stops it.
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
