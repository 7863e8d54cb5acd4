//! The `myinfo-proxy` command: serve, check-config, keygen, jwks; and, with the default `demo`
//! feature, demo and emulator.

use clap::{Parser, Subcommand};
use myinfo_proxy::config::{Config, ConfigError, KeySource, LogFormat};
use myinfo_proxy::jose::generate_client_jwks;
use myinfo_proxy::Proxy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod allocator;

/// Exit status for a configuration error (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "myinfo-proxy",
    version,
    about = "Signs every Singpass Myinfo call for the app behind it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The config file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate a config file and its keys; print a summary without secrets.
    CheckConfig {
        /// The config file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Write a new private JWKS (ES256 sig + ECDH-ES+A256KW enc, P-256) and its public JWKS.
    Keygen {
        /// Directory to write private-jwks.json and public-jwks.json into.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    #[cfg(feature = "demo")]
    /// Run the built-in strict emulator and the proxy on loopback with throwaway keys, walk a
    /// whole Myinfo v4 flow through the proxy, then keep serving until Ctrl-C.
    Demo {
        /// Where the proxy listens (an ephemeral port when this one is taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where its admin endpoints listen (an ephemeral port when this one is taken).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
    #[cfg(feature = "demo")]
    /// Run the strict Singpass emulator alone (Myinfo v4 under /com/v4, FAPI 2.0 under /fapi,
    /// CIBA at the root) for offline development; its users consent at /com/v4/authorize and
    /// /fapi/auth without a browser.
    Emulator {
        /// Where it listens.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// The client id it accepts.
        #[arg(long)]
        client_id: String,
        /// The client's PUBLIC JWKS file (e.g. from `keygen`: public-jwks.json).
        #[arg(long)]
        client_jwks: PathBuf,
    },
    /// Print a new random seal key for the Redis keyring (`redis.seal_keys_file`).
    SealKey,
    /// Print the public JWKS of the configured keys (to register with Singpass).
    Jwks {
        /// The config file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    // `demo` or `emulator` in a build without the `demo` feature (the production image): a
    // refusal that says why, instead of clap's bare "unrecognized subcommand". Its arguments,
    // `--help` included, are taken and ignored, so that every form gets the same answer.
    #[cfg(not(feature = "demo"))]
    #[command(
        name = "demo",
        alias = "emulator",
        hide = true,
        about = "Not in this build (built without the `demo` feature)",
        disable_help_flag = true
    )]
    WithoutDemo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up logging once its config is read; the demo prints its own account on
    // stdout and logs only errors unless RUST_LOG asks for more.
    match cli.command {
        Command::Serve { .. } => {}
        #[cfg(feature = "demo")]
        Command::Demo { .. } => init_tracing("error", None),
        _ => init_tracing("info", None),
    }
    let result = match cli.command {
        Command::Serve { config } => run_serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keygen { out, force } => keygen(&out, force),
        Command::Jwks { config } => jwks(&config),
        Command::SealKey => {
            println!("{}", myinfo_proxy::binding::SealKeyring::generate_key());
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen, admin } => demo(listen, admin),
        #[cfg(feature = "demo")]
        Command::Emulator {
            listen,
            client_id,
            client_jwks,
        } => emulator(listen, client_id, &client_jwks),
        #[cfg(not(feature = "demo"))]
        Command::WithoutDemo { .. } => <Cli as clap::CommandFactory>::command()
            .error(
                clap::error::ErrorKind::InvalidSubcommand,
                "`demo` and `emulator` are not in this build: it was built without the `demo` \
                 feature (as the production image is). Run them from a default build, e.g. \
                 `cargo run --release -- demo`.",
            )
            .exit(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(path, e)) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Other(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(PathBuf, ConfigError),
    Other(String),
}

/// Logs to stderr at `default` level (or `RUST_LOG`), as JSON when `MYINFO_PROXY_LOG_FORMAT`
/// says `json`, or else as the config says.
fn init_tracing(default: &str, configured: Option<LogFormat>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json = match std::env::var("MYINFO_PROXY_LOG_FORMAT") {
        Ok(v) => v == "json",
        Err(_) => configured == Some(LogFormat::Json),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::Config(path.to_owned(), e))
}

fn run_serve(path: &Path) -> Result<(), Failure> {
    let config = load(path)?;
    init_tracing("info", Some(config.log_format));
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = serve_runtime().map_err(|e| Failure::Other(e.to_string()))?;
    runtime.block_on(async {
        let mut proxy = Proxy::from_config(&config).map_err(|e| Failure::Config(path.to_owned(), e))?;
        // Both listeners and an upstream connection per main connection must fit `ulimit -n`,
        // or the admin listener could not accept probes while the main one is full.
        if let Some(lowered) = proxy.fit_open_file_limit() {
            tracing::warn!("{lowered}");
        }
        let bind = |addr: std::net::SocketAddr| async move {
            tokio::net::TcpListener::bind(addr).await.map_err(|e| Failure::Other(format!("cannot listen on {addr}: {e}")))
        };
        let listener = bind(config.listen).await?;
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let local = listener.local_addr().map_err(|e| Failure::Other(e.to_string()))?;
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string());
        tracing::info!(listen = %local, admin = admin_addr.as_deref().unwrap_or("off"), upstreams = config.upstreams.len(), "myinfo-proxy serving");

        // SIGTERM/SIGINT: readiness turns false, the listener stops accepting, in-flight
        // requests get drain_timeout to finish. The admin listener stays up until then, so
        // probes see "not ready" rather than a refused connection.
        let (stop_main, main_stopped) = tokio::sync::oneshot::channel::<()>();
        let draining = proxy.clone();
        let drain = config.drain_timeout;
        tokio::spawn(async move {
            shutdown_signal().await;
            draining.start_draining();
            tracing::info!(drain_s = drain.as_secs(), "shutdown requested: draining");
            let _ = stop_main.send(());
        });
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = admin_listener.map(|l| {
            let admin = proxy.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = admin_stopped.await;
                };
                admin.serve_admin(l, stopped, Duration::from_secs(1)).await
            })
        });
        let stopped = async move {
            let _ = main_stopped.await;
        };
        proxy.serve(listener, stopped, drain).await
        .map_err(|e| Failure::Other(e.to_string()))?;
        let _ = stop_admin.send(());
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        tracing::info!("myinfo-proxy stopped");
        Ok(())
    })
}

/// The runtime `serve` runs on: with one core to use (a pinned process, a container limited
/// to one CPU), tokio's current-thread runtime, where a request never wakes another thread
/// (on the load benchmark: the same CPU per request as the multi-thread runtime with its one
/// worker, 4% more requests per second, 10% lower median latency); with more, the
/// multi-thread runtime (one worker per core).
fn serve_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(feature = "demo")]
fn demo(listen: std::net::SocketAddr, admin: std::net::SocketAddr) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Other(e.to_string()))?;
    runtime
        .block_on(myinfo_proxy::demo::run(listen, admin, shutdown_signal()))
        .map_err(Failure::Other)
}

#[cfg(feature = "demo")]
fn emulator(listen: std::net::SocketAddr, client_id: String, jwks: &Path) -> Result<(), Failure> {
    let set =
        singpass_emulator::read_public_jwks(jwks).map_err(|e| Failure::Other(e.to_string()))?;
    let config = singpass_emulator::EmulatorConfig::new(client_id, set);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Other(e.to_string()))?;
    runtime.block_on(async {
        tokio::select! {
            served = singpass_emulator::serve_forever(config, listen) => served.map_err(|e| Failure::Other(format!("cannot listen on {listen}: {e}"))),
            () = shutdown_signal() => Ok(()),
        }
    })
}

fn check_config(path: &Path) -> Result<(), Failure> {
    let config = load(path)?;
    // Building the proxy loads and checks everything it needs: keys, trust roots, inbound TLS.
    let proxy = Proxy::from_config(&config).map_err(|e| Failure::Config(path.to_owned(), e))?;
    println!("{}: OK", path.display());
    println!("  listen             {}", config.listen);
    println!("  client_id          {}", config.client_id);
    let source = match &config.keys {
        KeySource::JwksFile(p) => format!("private JWKS file {}", p.display()),
        KeySource::JwksEnv(v) => format!("private JWKS in ${v}"),
        KeySource::Pem { .. } => "PEM keys".to_owned(),
    };
    println!("  keys               {source}");
    println!("    sig kid          {}", proxy.signing_kid());
    for enc in proxy.encryption_kids() {
        println!("    enc kid          {enc}");
    }
    let t = &config.timeouts;
    println!(
        "  timeouts           connect {}, attempt {}, overall {}",
        humantime::format_duration(t.connect),
        humantime::format_duration(t.attempt),
        humantime::format_duration(t.overall)
    );
    println!("  max_request_body   {} bytes", config.max_request_body);
    for up in &config.upstreams {
        println!("  upstream {:?} ({:?}, {})", up.name, up.kind, up.base_url);
    }
    for route in proxy.routes() {
        println!(
            "    {:<4} {:<24} -> {}",
            route.method, route.local, route.upstream
        );
    }
    for w in &config.warnings {
        println!("  warning: {w}");
    }
    Ok(())
}

fn keygen(out: &Path, force: bool) -> Result<(), Failure> {
    let (private, public) = generate_client_jwks().map_err(|e| Failure::Other(e.to_string()))?;
    std::fs::create_dir_all(out)
        .map_err(|e| Failure::Other(format!("cannot create {}: {e}", out.display())))?;
    let private_path = out.join("private-jwks.json");
    let public_path = out.join("public-jwks.json");
    if !force && (private_path.exists() || public_path.exists()) {
        return Err(Failure::Other(format!(
            "{} already holds keys; pass --force to replace them",
            out.display()
        )));
    }
    write_private(
        &private_path,
        &serde_json::to_string_pretty(&private).expect("JSON"),
    )?;
    std::fs::write(
        &public_path,
        serde_json::to_string_pretty(&public).expect("JSON") + "\n",
    )
    .map_err(|e| Failure::Other(format!("cannot write {}: {e}", public_path.display())))?;
    println!(
        "wrote {} (private: keep it secret, mount it as a Secret)",
        private_path.display()
    );
    println!(
        "wrote {} (public: serve it at the JWKS URL registered with Singpass)",
        public_path.display()
    );
    for key in public["keys"].as_array().into_iter().flatten() {
        println!(
            "  kid {} use {} alg {}",
            key["kid"].as_str().unwrap_or(""),
            key["use"].as_str().unwrap_or(""),
            key["alg"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))
}

fn jwks(path: &Path) -> Result<(), Failure> {
    let config = load(path)?;
    let proxy = Proxy::from_config(&config).map_err(|e| Failure::Config(path.to_owned(), e))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&proxy.public_jwks()).expect("JSON")
    );
    Ok(())
}
