//! The `leadrouter` binary: parse arguments, load configuration, run.
#![forbid(unsafe_code)]

/// mimalloc: glibc's malloc cost about a fifth of the server's CPU under load (sled copies
/// tree nodes on every insert; replies are built from many small strings). See the README's
/// Benchmarks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use leadrouter::catalog::GenerateSpec;
use leadrouter::config::{Config, ProcessEnv};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leadrouter",
    version,
    about = "Routes leads to the best store and shopping guide."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and HTTP on one port (the default command).
    Serve(ServeArgs),
    /// Generate or check network files.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Export members' attribution trails, or verify their hash chains and recompute their
    /// orders' owners and splits.
    #[command(subcommand)]
    Trail(TrailCmd),
    /// A settlement statement from a running server: per party, credits, reversals and net over
    /// a window of business days (the server's ledger by the time orders and refunds happened).
    Ledger {
        /// The server, e.g. http://127.0.0.1:50051.
        #[arg(long)]
        server: String,
        /// First day, YYYY-MM-DD (UTC+8 midnight unless --tz-offset-hours says otherwise).
        #[arg(long)]
        from: String,
        /// Day after the last, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Only this party, e.g. guide:G000001 or store:S00001.
        #[arg(long)]
        party: Option<String>,
        /// Every line as CSV instead of the per-party statement.
        #[arg(long)]
        csv: bool,
        /// Hours east of UTC of the days' midnight (the brand's time zone). Default 8.
        #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
        tz_offset_hours: i64,
    },
    /// Learn model artifacts from history (loaded by the server through `[models]`).
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Make, list and revoke callers' keys in a keys file (`[auth] keys_file`).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The PostgreSQL database (`[storage] backend = "postgres"`): its schema, and moving in
    /// from the embedded store.
    #[command(subcommand)]
    Db(DbCmd),
    /// For reviewers: list, show (with the evidence) and resolve disputes on a running server.
    Disputes {
        /// The server, e.g. http://127.0.0.1:50051.
        #[arg(long, global = true, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// JSON instead of a table, for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        cmd: DisputesCmd,
    },
}

#[derive(Subcommand)]
enum DbCmd {
    /// Apply the schema migrations the database lacks (`serve` does too, under the same lock).
    Migrate {
        /// e.g. postgres://leadrouter@127.0.0.1/leadrouter; also LEADROUTER_DATABASE_URL.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The schema versions applied and pending.
    Status {
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Copy a stopped server's sled data directory into an empty database, then check the copy
    /// (every chain, every order's owner and split, the decisions, counts and logs).
    Import {
        /// The sled data directory.
        #[arg(long)]
        from_data_dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
        /// The configuration whose rule sets the check recomputes orders with.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Make a key: prints it once (it is kept nowhere) and appends its hash to the file.
    Add {
        /// Unique; recorded as the actor of the key's writes.
        #[arg(long)]
        name: String,
        /// router_client, guide_app, operator, reviewer, analyst, monitoring or admin.
        #[arg(long)]
        role: String,
        /// Limit a guide_app, operator or reviewer key to these stores (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
        #[arg(long)]
        keys_file: PathBuf,
    },
    /// The keys in a file (names, roles, stores; never the keys).
    List {
        #[arg(long)]
        keys_file: PathBuf,
    },
    /// Revoke a key by name (takes effect when the server reads the file: SIGHUP or restart).
    Revoke {
        #[arg(long)]
        name: String,
        #[arg(long)]
        keys_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// The regional preference matrix (region × category) from an orders CSV
    /// (order_id,region_code,category,amount_cents,occurred_at), with time decay and shrinkage
    /// up the region tree.
    Preference {
        /// An orders CSV (order_id,region_code,category,amount_cents,occurred_at)…
        #[arg(long, required_unless_present = "trail", conflicts_with = "trail")]
        orders: Option<PathBuf>,
        /// …or an exported trail, with --decisions: the region is the fulfilling store's, the
        /// category the member's latest lead's interest that the store carries.
        #[arg(long, requires = "decisions")]
        trail: Option<PathBuf>,
        /// Exported decisions (`leadrouter trail export --decisions`), with --trail.
        #[arg(long, requires = "trail")]
        decisions: Option<PathBuf>,
        /// The artifact to write (JSON).
        #[arg(long)]
        out: PathBuf,
        /// The network directory whose categories the orders use (default: the demo network).
        #[arg(long)]
        network: Option<PathBuf>,
        /// Days after which an order counts half.
        #[arg(long, default_value_t = 90.0)]
        half_life_days: f64,
        /// Orders a region needs before its own mix outweighs its parent region's.
        #[arg(long, default_value_t = 30.0)]
        shrinkage: f64,
        /// Measure ages back from the end of this day (YYYY-MM-DD); default: the last order.
        #[arg(long)]
        as_of: Option<String>,
        /// Weight orders by amount instead of counting them.
        #[arg(long)]
        by_amount: bool,
    },
    /// Conversion propensity (logistic regression) from routed leads and what became of them;
    /// prints AUC, log-loss and a calibration table on the latest decisions.
    Propensity(PropensityCli),
    /// Guide skill: each guide's conversion rate from routed leads and what became of them,
    /// shrunk towards the store's and tier's rates.
    Skill {
        /// Exported decisions (`leadrouter trail export --decisions`).
        #[arg(long)]
        decisions: PathBuf,
        /// lead_id,converted (1/0) for the decisions' leads…
        #[arg(long, conflicts_with = "trail", required_unless_present = "trail")]
        labels: Option<PathBuf>,
        /// …or an exported trail: a member lead converted when the member ordered within
        /// --window-days.
        #[arg(long)]
        trail: Option<PathBuf>,
        #[arg(long)]
        network: Option<PathBuf>,
        #[arg(long, default_value_t = 7)]
        window_days: u32,
        /// Pseudo-leads of shrinkage towards the peers (default: estimated from the data).
        #[arg(long)]
        shrinkage: Option<f64>,
        /// The artifact to write (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// The dual_price policy's capacity prices: the Lagrange multipliers of the last day's
    /// assignment of its leads on the policy's own estimates (with the config's routing, policy
    /// and [models]).
    Prices {
        /// Exported decisions (`leadrouter trail export --decisions`).
        #[arg(long)]
        decisions: PathBuf,
        /// The service's config file (routing, policy, network, [models]).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        network: Option<PathBuf>,
        /// Earlier prices to start from (e.g. last night's).
        #[arg(long)]
        warm: Option<PathBuf>,
        /// Learn from the latest N business days, each warm-started from the one before.
        #[arg(long, default_value_t = 1)]
        days: usize,
        #[arg(long, default_value_t = 300)]
        max_iterations: usize,
        /// The artifact to write (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// The whole nightly loop: preference, skill, propensity, segments (with --tags) and prices,
    /// in that order, into one directory with the [models] table that loads them.
    Learn {
        #[arg(long)]
        decisions: PathBuf,
        /// An exported trail: outcomes, and the orders the preference model learns from.
        #[arg(long, required_unless_present = "labels")]
        trail: Option<PathBuf>,
        /// lead_id,converted labels instead of a trail (the preference model then needs
        /// --orders).
        #[arg(long, conflicts_with = "trail")]
        labels: Option<PathBuf>,
        /// An orders CSV for the preference model.
        #[arg(long)]
        orders: Option<PathBuf>,
        /// member_id,tag,weight rows for segments.
        #[arg(long)]
        tags: Option<PathBuf>,
        #[arg(long, default_value_t = 4)]
        segments: usize,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        network: Option<PathBuf>,
        #[arg(long, default_value_t = 7)]
        window_days: u32,
        /// Prices from the latest N business days.
        #[arg(long, default_value_t = 1)]
        price_days: usize,
        /// Last night's prices to start from.
        #[arg(long)]
        warm_prices: Option<PathBuf>,
        /// Where to write the artifacts and models.toml.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Member segments by k-means over tag vectors (member_id,tag,weight rows).
    Segments {
        #[arg(long)]
        tags: PathBuf,
        #[arg(long, default_value_t = 4)]
        k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The artifact to write (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Also write each member's segment (member_id,segment).
        #[arg(long)]
        assignments: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct PropensityCli {
    /// Exported decisions (`leadrouter trail export --decisions`).
    #[arg(long)]
    decisions: PathBuf,
    /// lead_id,converted (1/0) for the decisions' leads…
    #[arg(long, conflicts_with = "trail", required_unless_present = "trail")]
    labels: Option<PathBuf>,
    /// …or an exported trail: a member lead converted when the member ordered within
    /// --window-days.
    #[arg(long)]
    trail: Option<PathBuf>,
    #[arg(long)]
    network: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    window_days: u32,
    /// Share of the latest decisions kept for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_share: f64,
    #[arg(long, default_value_t = 1e-3)]
    l2: f64,
    /// `routing.regional_taste` of the router that made the decisions (the preference feature
    /// is the match route() computed).
    #[arg(long, default_value_t = 0.2)]
    regional_taste: f64,
    /// The artifact to write (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum DisputesCmd {
    /// Disputes, oldest first.
    List {
        /// open, upheld or reassigned.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        guide: Option<String>,
        /// A party, e.g. channel:ECOMMERCE or store:S00001.
        #[arg(long)]
        claimant: Option<String>,
    },
    /// One dispute with its evidence.
    Show { id: String },
    /// Uphold the owner, or reassign the order with --reassign PARTY.
    Resolve {
        id: String,
        /// Keep the owner.
        #[arg(
            long,
            conflicts_with = "reassign",
            required_unless_present = "reassign"
        )]
        uphold: bool,
        /// The new owner: guide:ID, store:ID or channel:NAME.
        #[arg(long)]
        reassign: Option<String>,
        /// With --reassign guide:ID, also bind the member to that guide.
        #[arg(long, requires = "reassign")]
        correct_binding: bool,
        /// Who decides.
        #[arg(long)]
        reviewer: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
}

/// Where trails come from: a stopped server's data directory, or one member on a running server.
#[derive(clap::Args)]
struct TrailSource {
    /// sled data directory of a stopped server (default ./leadrouter-data).
    #[arg(long, conflicts_with_all = ["server", "database_url"])]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database the servers use (they may go on serving), e.g.
    /// postgres://leadrouter@db/leadrouter; also LEADROUTER_DATABASE_URL.
    #[arg(long, conflicts_with = "server")]
    database_url: Option<String>,
    /// A running server, e.g. http://127.0.0.1:50051 (export needs --member; verify without
    /// --member checks every member).
    #[arg(long)]
    server: Option<String>,
    /// Only this member's trail.
    #[arg(long)]
    member: Option<String>,
}

#[derive(Subcommand)]
enum TrailCmd {
    /// Write trails as JSON Lines (one event per line, each member's in seq order).
    Export {
        #[command(flatten)]
        source: TrailSource,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Export the routing decisions instead (one lead per line, in the order decided), for
        /// `leadrouter-sim replay`; needs --data-dir (a stopped server) or --database-url (servers may go on serving).
        #[arg(long, conflicts_with_all = ["server", "member"])]
        decisions: bool,
        /// With --decisions: first business day, YYYY-MM-DD.
        #[arg(long, requires = "decisions")]
        from: Option<String>,
        /// With --decisions: last business day, YYYY-MM-DD.
        #[arg(long, requires = "decisions")]
        to: Option<String>,
    },
    /// Check hash chains and recompute ownership and splits; exits 1 on the first break or any
    /// difference, naming it.
    Verify {
        /// An exported JSON Lines file (instead of --data-dir or --server).
        #[arg(conflicts_with_all = ["data_dir", "server"])]
        file: Option<PathBuf>,
        #[command(flatten)]
        source: TrailSource,
        /// Configuration whose [attribution] rule sets and split policies recompute the orders
        /// (default: the built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Credit conversions to channels by every attribution model (first, last, linear, time
    /// decay, position based, Markov removal effect), side by side.
    Models {
        /// An exported trail file (JSON Lines).
        #[arg(required_unless_present = "journeys", conflicts_with = "journeys")]
        file: Option<PathBuf>,
        /// A journeys CSV instead (path,total_conversions,total_conversion_value,total_null;
        /// gzip or not).
        #[arg(long)]
        journeys: Option<PathBuf>,
        /// Name a trail's steps by the touch's `channel` or `kind`.
        #[arg(long, default_value = "channel", value_parser = ["channel", "kind"])]
        by: String,
        /// Time-decay half-life: hours for trails, steps for a journeys CSV.
        #[arg(long, default_value_t = 24.0)]
        half_life: f64,
        /// CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:50051 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// sled data directory (default ./leadrouter-data).
    #[arg(long, conflicts_with = "database_url")]
    data_dir: Option<PathBuf>,
    /// Serve on PostgreSQL (several replicas may share it), e.g.
    /// postgres://leadrouter@127.0.0.1/leadrouter; also LEADROUTER_DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Network directory (stores.csv, guides.csv, preference.csv); default: the saved network,
    /// else the demo.
    #[arg(long)]
    network: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Write a seeded, reproducible network.
    Generate {
        /// The demo network shipped in the repo (420 stores, 7 provinces).
        #[arg(long, conflicts_with = "reference")]
        demo: bool,
        /// The benches' reference network (10,000 stores, 60,000 guides, every province).
        #[arg(long)]
        reference: bool,
        /// Number of stores (when neither --demo nor --reference).
        #[arg(long, default_value_t = 1000)]
        stores: usize,
        /// Guides per store, `N` or `MIN-MAX`.
        #[arg(long, default_value = "4-8")]
        guides_per_store: String,
        /// Province codes (6 or 12 digits), comma-separated; default all.
        #[arg(long, value_delimiter = ',')]
        provinces: Vec<String>,
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a network directory and report what is wrong with it, if anything.
    Check { dir: PathBuf },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(&ProcessEnv)?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.network {
        config.network = Some(v);
    }
    if let Some(v) = args.database_url {
        config.storage.url = Some(v);
        config.storage.backend = "postgres".into();
    }
    Ok(config)
}

fn generate_spec(
    demo: bool,
    reference: bool,
    stores: usize,
    guides_per_store: &str,
    provinces: &[String],
    seed: Option<u64>,
) -> anyhow::Result<GenerateSpec> {
    let mut spec = if demo {
        GenerateSpec::demo()
    } else if reference {
        GenerateSpec::reference()
    } else {
        let (lo, hi) = match guides_per_store.split_once('-') {
            Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
            None => {
                let n = guides_per_store.trim().parse()?;
                (n, n)
            }
        };
        anyhow::ensure!(
            lo <= hi && hi <= 100,
            "--guides-per-store: need MIN <= MAX <= 100"
        );
        anyhow::ensure!(
            (1..=1_000_000).contains(&stores),
            "--stores: must be in 1..=1000000"
        );
        let provinces = provinces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                leadrouter::catalog::parse_province(p)
                    .map_err(|e| anyhow::anyhow!("--provinces[{i}]: {e}"))
            })
            .collect::<anyhow::Result<Vec<u64>>>()?;
        GenerateSpec {
            stores,
            guides_per_store: (lo, hi),
            provinces,
            ..GenerateSpec::demo()
        }
    };
    if let Some(s) = seed {
        spec.seed = s;
    }
    Ok(spec)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn trail(cmd: TrailCmd) -> anyhow::Result<()> {
    use leadrouter::app::trail;
    let data_dir = |s: &TrailSource| {
        let url = s.database_url.clone().or_else(|| {
            s.data_dir
                .is_none()
                .then(|| std::env::var(leadrouter::storage::DATABASE_URL_ENV).ok())
                .flatten()
        });
        match url {
            Some(url) => trail::Offline::Database(url),
            None => trail::Offline::Dir(
                s.data_dir
                    .clone()
                    .unwrap_or_else(|| Config::default().data_dir),
            ),
        }
    };
    match cmd {
        TrailCmd::Export {
            source,
            out,
            decisions: true,
            from,
            to,
        } => {
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = trail::export_decisions_dir(
                &data_dir(&source),
                from.as_deref(),
                to.as_deref(),
                &mut sink,
            )?;
            sink.flush()?;
            eprintln!("exported {n} decisions");
            Ok(())
        }
        TrailCmd::Export { source, out, .. } => {
            anyhow::ensure!(
                source.server.is_none() || source.member.is_some(),
                "export from --server needs --member; export every member from a stopped server's --data-dir"
            );
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = match (&source.server, &source.member) {
                (Some(url), Some(m)) => {
                    runtime()?.block_on(trail::export_live(url, m, &mut sink))?
                }
                _ => trail::export_dir(&data_dir(&source), source.member.as_deref(), &mut sink)?,
            };
            sink.flush()?;
            eprintln!("exported {n} events");
            Ok(())
        }
        TrailCmd::Verify {
            file,
            source,
            config,
        } => {
            let book = rule_book(config.as_deref())?;
            let report = match (&file, &source.server, &source.member) {
                (Some(f), _, _) => trail::verify_file(f, &book)?,
                (None, Some(url), m) => {
                    runtime()?.block_on(trail::verify_live(url, m.as_deref()))?
                }
                _ => trail::verify_dir(&data_dir(&source), source.member.as_deref(), &book)?,
            };
            println!("{report}");
            anyhow::ensure!(report.ok(), "the trail does not verify");
            Ok(())
        }
        TrailCmd::Models {
            file,
            journeys,
            by,
            half_life,
            csv,
        } => {
            use leadrouter::attribution::journeys::StepBy;
            let source = match (journeys, file) {
                (Some(j), _) => trail::JourneySource::Csv(j),
                (None, Some(f)) => trail::JourneySource::Trails(
                    f,
                    if by == "kind" {
                        StepBy::Kind
                    } else {
                        StepBy::Channel
                    },
                ),
                (None, None) => anyhow::bail!("give a trail file or --journeys FILE"),
            };
            let j = trail::read_journeys(&source)?;
            println!("{}", trail::models_table(&j, half_life, csv)?);
            Ok(())
        }
    }
}

fn ledger(
    server: &str,
    from: &str,
    to: &str,
    party: Option<&str>,
    csv: bool,
    tz_offset_hours: i64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (-12..=14).contains(&tz_offset_hours),
        "--tz-offset-hours: must be in -12..=14, got {tz_offset_hours}"
    );
    let midnight = |field: &str, day: &str| -> anyhow::Result<i64> {
        let d = leadrouter::attribution::parse_date(day)
            .map_err(|e| anyhow::anyhow!("--{field}: {e}"))?;
        Ok(i64::from(d.0) * 86_400_000 - tz_offset_hours * 3_600_000)
    };
    let (from_ms, to_ms) = (midnight("from", from)?, midnight("to", to)?);
    let lines =
        runtime()?.block_on(leadrouter::app::ledger::read(server, from_ms, to_ms, party))?;
    if csv {
        print!("{}", leadrouter::app::ledger::csv(&lines));
    } else {
        println!(
            "{}",
            leadrouter::app::ledger::statement(&leadrouter::app::ledger::totals(&lines))
        );
    }
    Ok(())
}

fn disputes(server: &str, as_json: bool, cmd: DisputesCmd) -> anyhow::Result<()> {
    use leadrouter::app::disputes as d;
    use leadrouter_proto::v1 as pb;
    let out = match cmd {
        DisputesCmd::List {
            status,
            store,
            guide,
            claimant,
        } => {
            let status = d::status_filter(status.as_deref())?;
            let request = pb::ListDisputesRequest {
                status,
                store_id: store.unwrap_or_default(),
                guide_id: guide.unwrap_or_default(),
                claimant: claimant.unwrap_or_default(),
                ..Default::default()
            };
            runtime()?.block_on(d::list(server, request, as_json))?
        }
        DisputesCmd::Show { id } => runtime()?.block_on(d::show(server, &id, as_json))?,
        DisputesCmd::Resolve {
            id,
            uphold: _,
            reassign,
            correct_binding,
            reviewer,
            reason,
        } => runtime()?.block_on(d::resolve(
            server,
            &id,
            reassign.as_deref(),
            correct_binding,
            &reviewer,
            &reason,
            as_json,
        ))?,
    };
    println!("{out}");
    Ok(())
}

/// The rule sets of `--config FILE` (or the defaults) that checks recompute orders with.
fn rule_book(
    config: Option<&std::path::Path>,
) -> anyhow::Result<leadrouter::attribution::RuleBook> {
    let config = match config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    config.attribution.check().map_err(anyhow::Error::msg)
}

fn db(cmd: DbCmd) -> anyhow::Result<()> {
    use leadrouter::app::db;
    let out = match cmd {
        DbCmd::Migrate { database_url } => db::migrate(&db::database_url(database_url)?)?,
        DbCmd::Status { database_url } => db::status(&db::database_url(database_url)?)?,
        DbCmd::Import {
            from_data_dir,
            database_url,
            config,
        } => {
            let book = rule_book(config.as_deref())?;
            db::import(&from_data_dir, &db::database_url(database_url)?, &book)?.to_string()
        }
    };
    println!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            init_logging();
            serve_config(args).and_then(|config| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(leadrouter::app::serve(config))
            })
        }
        Command::Network(NetworkCmd::Generate {
            demo,
            reference,
            stores,
            guides_per_store,
            provinces,
            seed,
            out,
        }) => generate_spec(demo, reference, stores, &guides_per_store, &provinces, seed)
            .and_then(|spec| leadrouter::app::generate_network(&spec, &out))
            .map(|net| {
                println!(
                    "wrote {}: {} stores, {} guides, version {}",
                    out.display(),
                    net.stores().len(),
                    net.guides().len(),
                    net.version()
                )
            }),
        Command::Network(NetworkCmd::Check { dir }) => {
            leadrouter::app::check_network(&dir).map(|s| println!("{s}"))
        }
        Command::Trail(cmd) => trail(cmd),
        Command::Ledger {
            server,
            from,
            to,
            party,
            csv,
            tz_offset_hours,
        } => ledger(&server, &from, &to, party.as_deref(), csv, tz_offset_hours),
        Command::Disputes { server, json, cmd } => disputes(&server, json, cmd),
        Command::Db(cmd) => db(cmd),
        Command::Keys(KeysCmd::Add {
            name,
            role,
            stores,
            keys_file,
        }) => leadrouter::app::keys::add(&keys_file, &name, &role, &stores).map(|key| {
            eprintln!(
                "added key {name:?} ({role}) to {}; it is shown once, here:",
                keys_file.display()
            );
            println!("{key}");
        }),
        Command::Keys(KeysCmd::List { keys_file }) => {
            leadrouter::app::keys::list(&keys_file).map(|s| println!("{s}"))
        }
        Command::Keys(KeysCmd::Revoke { name, keys_file }) => {
            leadrouter::app::keys::revoke(&keys_file, &name).map(|()| {
                eprintln!("revoked {name:?}; send SIGHUP to the server (or restart it) to apply")
            })
        }
        Command::Models(ModelsCmd::Preference {
            orders,
            trail,
            decisions,
            out,
            network,
            half_life_days,
            shrinkage,
            as_of,
            by_amount,
        }) => leadrouter::app::models::fit_preference(
            &leadrouter::app::models::PreferenceArgs {
                orders: orders
                    .as_deref()
                    .or(trail.as_deref())
                    .unwrap_or(std::path::Path::new("")),
                decisions: decisions.as_deref(),
                network: network.as_deref(),
                half_life_days,
                shrinkage,
                as_of: as_of.as_deref(),
                by_amount,
            },
            &out,
        )
        .map(|s| println!("{s}")),
        Command::Models(ModelsCmd::Segments {
            tags,
            k,
            seed,
            out,
            assignments,
        }) => leadrouter::app::models::fit_segments(&tags, k, seed, &out, assignments.as_deref())
            .map(|s| println!("{s}")),
        Command::Models(ModelsCmd::Skill {
            decisions,
            labels,
            trail,
            network,
            window_days,
            shrinkage,
            out,
        }) => leadrouter::app::learn::fit_skill(
            &leadrouter::app::learn::SkillArgs {
                decisions: &decisions,
                labels: labels.as_deref(),
                trail: trail.as_deref(),
                network: network.as_deref(),
                window_days,
                shrinkage,
            },
            &out,
        )
        .map(|s| println!("{s}")),
        Command::Models(ModelsCmd::Prices {
            decisions,
            config,
            network,
            warm,
            days,
            max_iterations,
            out,
        }) => leadrouter::app::learn::fit_prices(
            &leadrouter::app::learn::PricesArgs {
                decisions: &decisions,
                config: config.as_deref(),
                network: network.as_deref(),
                warm: warm.as_deref(),
                days: Some(days),
                max_iterations,
            },
            &out,
        )
        .map(|s| println!("{s}")),
        Command::Models(ModelsCmd::Learn {
            decisions,
            trail,
            labels,
            orders,
            tags,
            segments,
            config,
            network,
            window_days,
            price_days,
            warm_prices,
            out_dir,
        }) => leadrouter::app::learn::learn_all(
            &leadrouter::app::learn::LearnArgs {
                decisions: &decisions,
                trail: trail.as_deref(),
                labels: labels.as_deref(),
                orders: orders.as_deref(),
                tags: tags.as_deref(),
                config: config.as_deref(),
                network: network.as_deref(),
                window_days,
                price_days,
                warm_prices: warm_prices.as_deref(),
                segments_k: segments,
            },
            &out_dir,
        )
        .map(|s| println!("{s}")),
        Command::Models(ModelsCmd::Propensity(a)) => leadrouter::app::models::fit_propensity(
            &leadrouter::app::models::PropensityArgs {
                decisions: &a.decisions,
                labels: a.labels.as_deref(),
                trail: a.trail.as_deref(),
                network: a.network.as_deref(),
                window_days: a.window_days,
                validation_share: a.validation_share,
                l2: a.l2,
                regional_taste: a.regional_taste,
            },
            &a.out,
        )
        .map(|s| println!("{s}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadrouter: {e:#}");
            ExitCode::FAILURE
        }
    }
}
