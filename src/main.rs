//! The `myinfo-proxy` command: serve, check-config, keygen, seal-key, jwks.

use clap::{Parser, Subcommand};
use myinfo_proxy::config::{Config, ConfigError, KeySource, LogFormat};
use myinfo_proxy::jose::generate_client_jwks;
use myinfo_proxy::key_source::load_client_keys;
use myinfo_proxy::proxy::Proxy;
use myinfo_proxy::server::{serve, serve_tls, serve_with};
use myinfo_proxy::upstream::tls_config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up logging once its config is read; the demo prints its own account on
    // stdout and logs only errors unless RUST_LOG asks for more.
    match cli.command {
        Command::Serve { .. } => {}
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
        Command::Demo { listen, admin } => demo(listen, admin),
        Command::Emulator {
            listen,
            client_id,
            client_jwks,
        } => emulator(listen, client_id, &client_jwks),
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
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Other(e.to_string()))?;
    runtime.block_on(async {
        let proxy = Proxy::from_config(&config).map_err(|e| Failure::Config(path.to_owned(), e))?;
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
        let health = proxy.health().clone();
        let drain = config.drain_timeout;
        tokio::spawn(async move {
            shutdown_signal().await;
            health.start_draining();
            tracing::info!(drain_s = drain.as_secs(), "shutdown requested: draining");
            let _ = stop_main.send(());
        });
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = admin_listener.map(|l| {
            let admin = proxy.admin();
            tokio::spawn(serve_with(
                l,
                move |req| {
                    let answer = admin.handle(&req);
                    async move { answer }
                },
                async move {
                    let _ = admin_stopped.await;
                },
                Duration::from_secs(1),
            ))
        });
        let stopped = async move {
            let _ = main_stopped.await;
        };
        match &config.inbound.tls {
            Some(tls) => {
                let acceptor = myinfo_proxy::inbound::tls_acceptor(tls).map_err(|e| Failure::Config(path.to_owned(), e))?;
                serve_tls(listener, acceptor, proxy, stopped, drain).await
            }
            None => serve(listener, proxy, stopped, drain).await,
        }
        .map_err(|e| Failure::Other(e.to_string()))?;
        let _ = stop_admin.send(());
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        tracing::info!("myinfo-proxy stopped");
        Ok(())
    })
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

fn demo(listen: std::net::SocketAddr, admin: std::net::SocketAddr) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Other(e.to_string()))?;
    runtime
        .block_on(myinfo_proxy::demo::run(listen, admin, shutdown_signal()))
        .map_err(Failure::Other)
}

fn emulator(listen: std::net::SocketAddr, client_id: String, jwks: &Path) -> Result<(), Failure> {
    let text = std::fs::read(jwks)
        .map_err(|e| Failure::Other(format!("cannot read {}: {e}", jwks.display())))?;
    let set = josekit::jwk::JwkSet::from_bytes(&text)
        .map_err(|e| Failure::Other(format!("{}: not a JWKS: {e}", jwks.display())))?;
    if set.keys().iter().any(|k| k.parameter("d").is_some()) {
        return Err(Failure::Other(format!(
            "{} holds private keys: give the emulator the PUBLIC JWKS",
            jwks.display()
        )));
    }
    let config = myinfo_proxy::emulator::EmulatorConfig::new(client_id, set);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Other(e.to_string()))?;
    runtime.block_on(async {
        tokio::select! {
            served = myinfo_proxy::emulator::serve_forever(config, listen) => served.map_err(|e| Failure::Other(format!("cannot listen on {listen}: {e}"))),
            () = shutdown_signal() => Ok(()),
        }
    })
}

fn check_config(path: &Path) -> Result<(), Failure> {
    let config = load(path)?;
    let cfg_err = |e| Failure::Config(path.to_owned(), e);
    let keys = load_client_keys(&config).map_err(cfg_err)?;
    if let Some(tls) = &config.inbound.tls {
        myinfo_proxy::inbound::tls_acceptor(tls).map_err(cfg_err)?;
    }
    println!("{}: OK", path.display());
    println!("  listen             {}", config.listen);
    println!("  client_id          {}", config.client_id);
    let source = match &config.keys {
        KeySource::JwksFile(p) => format!("private JWKS file {}", p.display()),
        KeySource::JwksEnv(v) => format!("private JWKS in ${v}"),
        KeySource::Pem { .. } => "PEM keys".to_owned(),
    };
    println!("  keys               {source}");
    println!("    sig kid          {}", keys.signing().kid());
    for enc in keys.encryption() {
        println!("    enc kid          {}", enc.kid());
    }
    let t = &config.timeouts;
    println!(
        "  timeouts           connect {}, attempt {}, overall {}",
        humantime::format_duration(t.connect),
        humantime::format_duration(t.attempt),
        humantime::format_duration(t.overall)
    );
    println!("  max_request_body   {} bytes", config.max_request_body);
    let client = tower::util::BoxCloneSyncService::new(myinfo_proxy::upstream::upstream_client(
        tls_config(&config.tls).map_err(cfg_err)?,
        config.timeouts.connect,
        config.max_response_body,
    ));
    for up in &config.upstreams {
        println!("  upstream {:?} ({:?}, {})", up.name, up.kind, up.base_url);
    }
    for (method, local, upstream) in
        myinfo_proxy::route::RouteTable::new(&config, &client).describe()
    {
        println!("    {method:<4} {local:<24} -> {upstream}");
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
    let keys = load_client_keys(&config).map_err(|e| Failure::Config(path.to_owned(), e))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&keys.public_jwks()).expect("JSON")
    );
    Ok(())
}
