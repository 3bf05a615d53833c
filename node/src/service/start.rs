//! Starting a node: its configuration, store, keys and authors, the federation actor, the
//! HTTP face, and the actor that ties them together.

use super::*;

/// Starts a node on its data directory. Returns its handle and the task running it.
pub async fn start(home: Home) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
    let config = Config::load(&home.config()).map_err(|e| NodeError::Config(e.to_string()))?;
    // The HTTP face reads the federation view with the same configuration.
    let web_config = config.clone();
    let key = read_key(&home.node_key())?;
    let me = NodeId(key.public());
    let run_lock = run_lock(&home).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new(&me.to_string()));
    let db = home.database();
    let store = tokio::task::spawn_blocking(move || Store::open(&db))
        .await
        .map_err(|_| NodeError::Stopped)??;
    let membership = store.membership()?;
    let authors = store.authors()?;
    let rows = store.projects()?;
    let mut projects = HashMap::new();
    for row in rows {
        match store.load(row.id) {
            Ok(p) => {
                projects.insert(row.id, p);
            }
            Err(e) => warn!(project = %row.id.short(), error = %e, "project not loaded"),
        }
    }
    let marks: HashMap<ProjectId, (i64, i64)> = store
        .project_marks()?
        .into_iter()
        .map(|(p, a, b)| (p, (a, b)))
        .collect();
    let data_version = store.data_version()?;
    let known_addrs = store.peer_addrs()?;
    let readers = Arc::new(Readers::new(home.database()));
    let catalog_generation = readers.run(|c| c.generation()).await.unwrap_or(0);
    let collections = readers.run(|c| c.summaries()).await.unwrap_or_else(|e| {
        warn!(error = %e, "catalog summaries not read");
        Vec::new()
    });
    let listener = web::bind(config.web.listen).await?;
    let web_addr = listener.local_addr().map_err(|source| NodeError::Web {
        addr: config.web.listen,
        source,
    })?;
    let https = web::bind_https(&config.web, &home).await?;
    let base_url = web::base_url(&config.web, web_addr, https.as_ref());
    {
        let db = home.database();
        let url = base_url.clone();
        tokio::task::spawn_blocking(move || {
            crate::catalog::Catalog::open(&db).and_then(|c| c.set_public_url(&url))
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
    }
    std::fs::write(home.web_addr(), web_addr.to_string()).map_err(|source| NodeError::Web {
        addr: web_addr,
        source,
    })?;
    let store = StoreHandle::spawn(store);
    let cancel = CancellationToken::new();
    let (fed, fed_events, fed_task) = orrery_federation::spawn(
        key.clone(),
        config.network.clone(),
        membership.clone(),
        cancel.child_token(),
    )?;
    let (tx, rx) = mpsc::channel(256);
    let labs = Arc::new(labs::Labs::new(
        home.clone(),
        web_config.labs.clone(),
        me,
        tx.clone(),
        fed.clone(),
    ));
    let outboards = crate::dataplane::outboards::Outboards::new(&home);
    let data = dataplane::DataPlane::start(
        &key,
        config.data.listen_addr(&config.network.listen),
        dataplane::NodeGate {
            tx: tx.clone(),
            blobs: crate::blobs::BlobStore::new(home.blobs()),
            products: crate::dataplane::products::Products::new(&home, outboards.clone()),
            preserved: crate::dataplane::preserved::Preserved::new(
                &home,
                config.preservation.dir_in(&home),
                outboards,
            ),
        },
        labs::tunnel::Tunnels::new(tx.clone(), labs.clone()),
    )
    .await?;
    labs.set_endpoint(data.endpoint.clone());
    let (events, _) = broadcast::channel(4096);
    let preserver = Arc::new(preservation::Preserver {
        home: home.clone(),
        me,
        institution: config.node.institution.clone(),
        config: config.preservation.clone(),
        fed: fed.clone(),
        endpoint: data.endpoint.clone(),
        permits: data.fetch_permits.clone(),
        tx: tx.clone(),
        events: events.clone(),
    });
    let mut sessions = HashMap::new();
    let mut profiles = HashMap::new();
    let mut author_keys = Vec::new();
    for a in &authors {
        let akey = read_key(&home.author_key(&a.id))?;
        author_keys.push((a.id, akey.clone()));
        sessions.insert(
            a.id,
            Session::new(akey).map_err(|e| NodeError::Config(e.to_string()))?,
        );
        profiles.insert(a.id, a.profile.clone());
    }
    let batch = jobs::slurm::Batch::from_config(&config, &home);
    if let Some(b) = batch.clone() {
        tokio::spawn(async move { b.check().await });
    }
    let job_slots = match &batch {
        Some(_) => config.jobs.slurm.max_submitted,
        None => 1,
    };
    let runs = Arc::new(runs::Runs::new(labs.clone(), fed.clone(), batch));
    let name = config.node.name.clone();
    let job_key = key.clone();
    let mut actor = NodeActor {
        me,
        home: home.clone(),
        key,
        config,
        store,
        fed,
        projects,
        sessions,
        profiles,
        author_keys,
        peers: HashMap::new(),
        in_flight: HashSet::new(),
        again: HashSet::new(),
        refused: HashSet::new(),
        snapshot_in_flight: HashSet::new(),
        snapshot_refused: HashSet::new(),
        adverts: BTreeMap::new(),
        connected: HashSet::new(),
        membership,
        marks,
        data_version,
        tx: tx.clone(),
        events: events.clone(),
        readers: readers.clone(),
        collections,
        catalog_generation,
        preservation_mark: (0, 0),
        presence: PresenceBook::default(),
        presence_seq: 0,
        blobs: crate::blobs::BlobStore::new(home.blobs()),
        fetching: HashSet::new(),
        held_blobs: HashMap::new(),
        problems: HashMap::new(),
        data,
        polls: 0,
        advert_renewed: std::time::Instant::now(),
        metrics: metrics.clone(),
        labs: labs.clone(),
        lab_orders_seen: Default::default(),
        runs: runs.clone(),
        _run_lock: run_lock,
    };
    actor.publish_advert().await;
    // Reconnect to the members this node knew before it stopped.
    for (node, addrs) in known_addrs {
        if node == me {
            continue;
        }
        for a in addrs {
            if let Ok(addr) = a.parse() {
                let _ = actor.fed.dial(addr).await;
            }
        }
    }
    let handle = NodeHandle {
        tx,
        events,
        id: me,
        cancel: cancel.clone(),
        readers,
        web_addr: Some(web_addr),
        metrics,
        labs: labs.clone(),
        runs,
        name: name.into(),
    };
    {
        let labs = labs.clone();
        tokio::task::spawn_blocking(move || labs.check_and_reap());
    }
    {
        // Labs stop with the node.
        let (labs, cancel) = (labs.clone(), cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            labs.stop_all().await;
        });
    }
    // Pipelines: one worker takes the queued jobs in turn, as many at once as it has slots.
    let jobs = Arc::new(jobs::Jobs {
        home: home.clone(),
        wake: tokio::sync::Notify::new(),
        slots: Arc::new(tokio::sync::Semaphore::new(job_slots)),
    });
    jobs.recover(&handle, &job_key).await;
    tokio::spawn(preservation::work(preserver, cancel.clone()));
    tokio::spawn(jobs::work(
        jobs.clone(),
        handle.clone(),
        job_key,
        cancel.clone(),
    ));
    let router = orrery_web::router(
        web::NodePort {
            node: handle.clone(),
            home: home.clone(),
            config: web_config.clone(),
            events: web::public_events(&handle),
            view: Default::default(),
            auth: Default::default(),
            labs,
            jobs: jobs.clone(),
        },
        orrery_web::WebConfig::new(&base_url),
    );
    web::serve_https(https, router.clone(), cancel.clone());
    let web_cancel = cancel.clone();
    tokio::spawn(async move {
        let stop = async move { web_cancel.cancelled().await };
        if let Err(e) = orrery_web::serve(listener, router, stop).await {
            warn!(error = %e, "HTTP server stopped");
        }
    });
    info!(addr = %web_addr, "serving TAP at http://{web_addr}/tap");
    metrics::serve(&actor.config.metrics, &home, handle.clone(), cancel.clone()).await?;
    let task = tokio::spawn(async move {
        actor.run(rx, fed_events, cancel).await;
        // The node has stopped once its connections are closed (peers then learn it at once).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), fed_task).await;
    });
    Ok((handle, task))
}

/// The data directory's run lock. A lock just let go can stay held for an instant: a process
/// forked in that instant (by anything in this process) holds the lock's file until it runs its
/// own program. So a held lock is tried again for up to a second before the node is refused as
/// a second one.
async fn run_lock(home: &Home) -> Result<crate::home::RunLock, NodeError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let taken = crate::home::RunLock::acquire(home).map_err(|source| NodeError::Lock {
            path: home.run_lock(),
            source,
        })?;
        match taken {
            Some(lock) => return Ok(lock),
            None if tokio::time::Instant::now() >= deadline => {
                return Err(NodeError::Running(home.root().to_path_buf()));
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}
