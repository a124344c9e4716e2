use super::status;
use crate::catalog::{CatalogChange, GuideStatus, RegionLevel, format_code};
use crate::domain::{FieldError, check_id};
use crate::engine::{Applied, Engine, Moved, SuccessorRule};
use crate::wire::catalog::{
    audit_to_pb, guide_from_pb, status_from_pb, status_to_pb, store_from_pb, store_to_pb,
};
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::catalog_server::Catalog;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Default and largest page of `ListStores`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;
/// Largest reply page, encoded (a quarter of a default client's 4 MiB limit).

#[derive(Debug, Clone)]
pub struct CatalogSvc {
    engine: Arc<Engine>,
}

impl CatalogSvc {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Applies a change off the async workers (it writes and flushes).
    async fn apply(
        &self,
        change: CatalogChange,
        operator_id: String,
        reason: String,
    ) -> Result<Response<pb::CatalogChangeResponse>, Status> {
        let engine = self.engine.clone();
        let applied: Applied = tokio::task::spawn_blocking(move || {
            engine.apply_change(&change, &operator_id, &reason)
        })
        .await
        .map_err(|e| Status::internal(format!("the change did not finish: {e}")))?
        .map_err(|e| status::catalog(&e))?;
        Ok(Response::new(pb::CatalogChangeResponse {
            entry: applied.entry.as_ref().map(audit_to_pb),
            network_version: applied.network_version,
            transfers: applied.transferred.iter().map(moved_to_pb).collect(),
        }))
    }
}

impl CatalogSvc {
    /// A store-limited key may act only on its stores' guides (a guide not in the network is
    /// left to the call to report).
    fn guide_in_scope(
        &self,
        who: &crate::auth::Principal,
        field: &str,
        guide_id: &str,
    ) -> Result<(), Status> {
        if !who.scoped() {
            return Ok(());
        }
        match status::guide_store(&self.engine, guide_id) {
            Some(store) => who
                .check_store(
                    &format!("{field} {}", crate::domain::short(guide_id)),
                    &store,
                )
                .map_err(status::denied),
            None => Ok(()),
        }
    }
}

/// `page_size` of a list request: 0 means the default.
fn page_size(n: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(status::invalid(&FieldError::new(
            "page_size",
            format!("must be at most {MAX_PAGE}, got {n}"),
        ))),
    }
}

fn moved_to_pb(m: &Moved) -> pb::MemberTransfer {
    pb::MemberTransfer {
        member_id: m.member_id.clone(),
        to_guide_id: m.to_guide_id.clone().unwrap_or_default(),
        why: m.why.clone(),
        event_seq: m.event_seq.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl Catalog for CatalogSvc {
    async fn get_network(
        &self,
        _request: Request<pb::GetNetworkRequest>,
    ) -> Result<Response<pb::GetNetworkResponse>, Status> {
        let snap = self.engine.snapshot();
        let net = &snap.network;
        let regions = net.regions();
        let mut provinces: BTreeMap<u64, (String, u32, u32)> = BTreeMap::new();
        for s in net.stores() {
            if let Some(p) = regions.chain(s.region)[2] {
                let r = regions.get(p);
                let e = provinces
                    .entry(r.code)
                    .or_insert_with(|| (r.name.clone(), 0, 0));
                e.1 += 1;
                e.2 += s.guides.len() as u32;
            }
        }
        let active = net
            .guides()
            .iter()
            .filter(|g| g.status == GuideStatus::Active);
        Ok(Response::new(pb::GetNetworkResponse {
            network_version: net.version().to_string(),
            regions: regions
                .ids()
                .filter(|&i| regions.get(i).level != RegionLevel::Nation)
                .count() as u32,
            stores: net.stores().len() as u32,
            open_stores: net.stores().iter().filter(|s| s.open).count() as u32,
            guides: net.guides().len() as u32,
            active_guides: active.clone().count() as u32,
            categories: net.categories().to_vec(),
            provinces: provinces
                .into_iter()
                .map(|(code, (name, stores, guides))| pb::ProvinceCount {
                    region_code: format_code(code),
                    name,
                    stores,
                    guides,
                })
                .collect(),
            daily_capacity: active.map(|g| u64::from(g.daily_capacity)).sum(),
        }))
    }

    async fn list_stores(
        &self,
        request: Request<pb::ListStoresRequest>,
    ) -> Result<Response<pb::ListStoresResponse>, Status> {
        let r = request.into_inner();
        let page = page_size(r.page_size)?;
        let start: usize = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse().map_err(|_| {
                status::invalid(&FieldError::new(
                    "page_token",
                    "must be a token from a previous response",
                ))
            })?
        };
        let snap = self.engine.snapshot();
        let net = &snap.network;
        let filter = if r.region_code.is_empty() {
            None
        } else {
            Some(
                net.regions()
                    .resolve(&r.region_code)
                    .map_err(|rule| status::invalid(&FieldError::new("region_code", rule)))?,
            )
        };
        let matching: Vec<u32> = match filter {
            Some(region) => net.stores_in(region).collect(),
            None => (0..net.stores().len() as u32).collect(),
        };
        if start > matching.len() {
            return Err(status::invalid(&FieldError::new(
                "page_token",
                "is past the end of the list",
            )));
        }
        let mut end = (start + page).min(matching.len());
        let mut stores = Vec::with_capacity(end - start);
        let mut bytes = 0;
        for (i, &s) in matching[start..end].iter().enumerate() {
            let store = store_to_pb(net, s);
            bytes += prost::Message::encoded_len(&store);
            if bytes > status::MAX_PAGE_BYTES && i > 0 {
                end = start + i;
                break;
            }
            stores.push(store);
        }
        Ok(Response::new(pb::ListStoresResponse {
            stores,
            next_page_token: if end < matching.len() {
                end.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn get_guide_load(
        &self,
        request: Request<pb::GetGuideLoadRequest>,
    ) -> Result<Response<pb::GuideLoad>, Status> {
        let who = status::principal(&request)?;
        let id = request.into_inner().guide_id;
        check_id("guide_id", &id).map_err(|e| status::invalid(&e))?;
        self.guide_in_scope(&who, "guide_id", &id)?;
        let load = self.engine.guide_load(&id).ok_or_else(|| {
            Status::not_found(format!("guide_id: no guide {id:?} in the network"))
        })?;
        Ok(Response::new(pb::GuideLoad {
            guide_id: load.guide_id,
            store_id: load.store_id,
            business_day: load.day.to_string(),
            used: load.used,
            daily_capacity: load.daily_capacity,
            status: status_to_pb(load.status) as i32,
        }))
    }

    async fn upsert_store(
        &self,
        request: Request<pb::UpsertStoreRequest>,
    ) -> Result<Response<pb::CatalogChangeResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let actor = who
            .actor("operator_id", &r.operator_id)
            .map_err(status::denied)?;
        let store = store_from_pb(r.store).map_err(|e| status::invalid(&e))?;
        who.check_store("store.store_id", &store.store_id)
            .map_err(status::denied)?;
        self.apply(CatalogChange::UpsertStore(store), actor, r.reason)
            .await
    }

    async fn upsert_guide(
        &self,
        request: Request<pb::UpsertGuideRequest>,
    ) -> Result<Response<pb::CatalogChangeResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let actor = who
            .actor("operator_id", &r.operator_id)
            .map_err(status::denied)?;
        let guide = guide_from_pb(r.guide).map_err(|e| status::invalid(&e))?;
        who.check_store("guide.store_id", &guide.store_id)
            .map_err(status::denied)?;
        self.guide_in_scope(&who, "guide.guide_id", &guide.guide_id)?;
        self.apply(CatalogChange::UpsertGuide(guide), actor, r.reason)
            .await
    }

    async fn set_guide_status(
        &self,
        request: Request<pb::SetGuideStatusRequest>,
    ) -> Result<Response<pb::CatalogChangeResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let actor = who
            .actor("operator_id", &r.operator_id)
            .map_err(status::denied)?;
        let status = status_from_pb("status", r.status).map_err(|e| status::invalid(&e))?;
        self.guide_in_scope(&who, "guide_id", &r.guide_id)?;
        self.apply(
            CatalogChange::SetGuideStatus {
                guide_id: r.guide_id,
                status,
            },
            actor,
            r.reason,
        )
        .await
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let who = status::principal(&request)?;
        who.check_unscoped("ListAudit (every store's changes)")
            .map_err(status::denied)?;
        let r = request.into_inner();
        let page = page_size(r.page_size)?;
        let from = r.after_seq.checked_add(1).ok_or_else(|| {
            status::invalid(&FieldError::new("after_seq", "must be below 2^64 - 1"))
        })?;
        let engine = self.engine.clone();
        let mut entries = tokio::task::spawn_blocking(move || engine.audit(from, page + 1))
            .await
            .map_err(|e| Status::internal(format!("the read did not finish: {e}")))?
            .map_err(|e| status::store(&e))?;
        let more = entries.len() > page;
        entries.truncate(page);
        let mut entries: Vec<_> = entries.iter().map(audit_to_pb).collect();
        let fits = status::fitting(&entries);
        let more = more || fits < entries.len();
        entries.truncate(fits);
        Ok(Response::new(pb::ListAuditResponse {
            next_after_seq: if more {
                entries.last().map_or(0, |e| e.seq)
            } else {
                0
            },
            entries,
        }))
    }

    async fn transfer_members(
        &self,
        request: Request<pb::TransferMembersRequest>,
    ) -> Result<Response<pb::TransferMembersResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let actor = who
            .actor("operator_id", &r.operator_id)
            .map_err(status::denied)?;
        self.guide_in_scope(&who, "from_guide_id", &r.from_guide_id)?;
        if !r.to_guide_id.is_empty() {
            self.guide_in_scope(&who, "to_guide_id", &r.to_guide_id)?;
        }
        let rule = match pb::SuccessorRule::try_from(r.rule) {
            Ok(pb::SuccessorRule::SameStore) => SuccessorRule::SameStore,
            Ok(pb::SuccessorRule::LeastLoaded) => SuccessorRule::LeastLoaded,
            Ok(pb::SuccessorRule::Named) => SuccessorRule::Named(r.to_guide_id.clone()),
            _ => {
                return Err(status::invalid(&FieldError::new(
                    "rule",
                    format!("must be SAME_STORE, LEAST_LOADED or NAMED, got {}", r.rule),
                )));
            }
        };
        if !matches!(rule, SuccessorRule::Named(_)) && !r.to_guide_id.is_empty() {
            return Err(status::invalid(&FieldError::new(
                "to_guide_id",
                "must be empty unless rule is NAMED",
            )));
        }
        let engine = self.engine.clone();
        let (moved, entry) = tokio::task::spawn_blocking(move || {
            engine.transfer_members_audited(
                &r.transfer_id,
                &r.from_guide_id,
                &rule,
                &actor,
                &r.reason,
            )
        })
        .await
        .map_err(|e| Status::internal(format!("the transfer did not finish: {e}")))?
        .map_err(|e| status::catalog(&e))?;
        Ok(Response::new(pb::TransferMembersResponse {
            transfers: moved.iter().map(moved_to_pb).collect(),
            entry: entry.as_ref().map(audit_to_pb),
        }))
    }
}
