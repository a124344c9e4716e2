use super::status;
use crate::catalog::{GuideStatus, Network, Ownership, Pricing, RegionLevel, format_code};
use crate::domain::{FieldError, check_id};
use crate::engine::Engine;
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::catalog_server::Catalog;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Default and largest page of `ListStores`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Clone)]
pub struct CatalogSvc {
    engine: Arc<Engine>,
}

impl CatalogSvc {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

pub fn status_to_pb(s: GuideStatus) -> pb::GuideStatus {
    match s {
        GuideStatus::Active => pb::GuideStatus::Active,
        GuideStatus::Away => pb::GuideStatus::Away,
        GuideStatus::Left => pb::GuideStatus::Left,
    }
}

fn store_to_pb(net: &Network, idx: u32) -> pb::Store {
    let s = net.store(idx);
    pb::Store {
        store_id: s.id.to_string(),
        name: s.name.clone(),
        region_code: net.store_region_code(idx),
        location: Some(pb::Location {
            lat: s.location.lat,
            lon: s.location.lon,
        }),
        ownership: match s.ownership {
            Ownership::Direct => pb::StoreOwnership::Direct,
            Ownership::Franchise => pb::StoreOwnership::Franchise,
        } as i32,
        pricing: match s.pricing {
            Pricing::FullPrice => pb::StorePricing::FullPrice,
            Pricing::Outlet => pb::StorePricing::Outlet,
        } as i32,
        categories: net
            .categories()
            .iter()
            .enumerate()
            .filter(|(k, _)| s.categories & (1 << k) != 0)
            .map(|(_, c)| c.clone())
            .collect(),
        open: s.open,
        guides: s
            .guides
            .clone()
            .map(|g| {
                let g = net.guide(g);
                pb::Guide {
                    guide_id: g.id.to_string(),
                    store_id: s.id.to_string(),
                    name: g.name.clone(),
                    daily_capacity: g.daily_capacity,
                    tier: u32::from(g.tier),
                    status: status_to_pb(g.status) as i32,
                }
            })
            .collect(),
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
        let page = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            n => {
                return Err(status::invalid(&FieldError::new(
                    "page_size",
                    format!("must be at most {MAX_PAGE}, got {n}"),
                )));
            }
        } as usize;
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
        let end = (start + page).min(matching.len());
        Ok(Response::new(pb::ListStoresResponse {
            stores: matching[start..end]
                .iter()
                .map(|&s| store_to_pb(net, s))
                .collect(),
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
        let id = request.into_inner().guide_id;
        check_id("guide_id", &id).map_err(|e| status::invalid(&e))?;
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
}
