//! The one permission table: every gRPC method and HTTP route the service answers, and who may
//! call it. A path that is not here is answered as unknown (404, or gRPC `UNIMPLEMENTED`)
//! before any service sees it, so a route without an entry cannot be reached. `admin` may call
//! everything that needs a key. Store scopes are checked by the services, on the stores a
//! request's guides, offers and disputes belong to.

use super::{Principal, Role};

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed (health).
    Open,
    /// Any valid key (reflection, Ping).
    AnyKey,
    /// A key of one of these roles, or `admin`.
    Roles(&'static [Role]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// `/package.Service/Method` for gRPC, the path for HTTP.
    pub path: &'static str,
    pub access: Access,
}

use Role::{Analyst, GuideApp, Monitoring, Operator, Reviewer, RouterClient};

const fn p(path: &'static str, access: Access) -> Permission {
    Permission { path, access }
}

const READERS: &[Role] = &[RouterClient, Analyst, Reviewer];
const CATALOG_READERS: &[Role] = &[RouterClient, GuideApp, Operator, Reviewer, Analyst];

pub const PERMISSIONS: &[Permission] = &[
    // LeadRouter
    p(
        "/leadrouter.v1.LeadRouter/Route",
        Access::Roles(&[RouterClient]),
    ),
    p("/leadrouter.v1.LeadRouter/Ping", Access::AnyKey),
    p(
        "/leadrouter.v1.LeadRouter/RespondToOffer",
        Access::Roles(&[GuideApp]),
    ),
    // Attribution
    p(
        "/leadrouter.v1.Attribution/RecordTouch",
        Access::Roles(&[RouterClient]),
    ),
    p(
        "/leadrouter.v1.Attribution/RecordOrder",
        Access::Roles(&[RouterClient]),
    ),
    p(
        "/leadrouter.v1.Attribution/RecordRefund",
        Access::Roles(&[RouterClient]),
    ),
    p(
        "/leadrouter.v1.Attribution/GetTrail",
        Access::Roles(READERS),
    ),
    p(
        "/leadrouter.v1.Attribution/GetOwnership",
        Access::Roles(READERS),
    ),
    p(
        "/leadrouter.v1.Attribution/VerifyTrail",
        Access::Roles(&[Analyst, Reviewer]),
    ),
    p(
        "/leadrouter.v1.Attribution/ListLedger",
        Access::Roles(&[Analyst]),
    ),
    p(
        "/leadrouter.v1.Attribution/GetBindingHistory",
        Access::Roles(READERS),
    ),
    // Catalog
    p(
        "/leadrouter.v1.Catalog/GetNetwork",
        Access::Roles(CATALOG_READERS),
    ),
    p(
        "/leadrouter.v1.Catalog/ListStores",
        Access::Roles(CATALOG_READERS),
    ),
    p(
        "/leadrouter.v1.Catalog/GetGuideLoad",
        Access::Roles(&[GuideApp, Operator, Analyst]),
    ),
    p(
        "/leadrouter.v1.Catalog/UpsertStore",
        Access::Roles(&[Operator]),
    ),
    p(
        "/leadrouter.v1.Catalog/UpsertGuide",
        Access::Roles(&[Operator]),
    ),
    p(
        "/leadrouter.v1.Catalog/SetGuideStatus",
        Access::Roles(&[Operator]),
    ),
    p(
        "/leadrouter.v1.Catalog/ListAudit",
        Access::Roles(&[Operator, Analyst]),
    ),
    p(
        "/leadrouter.v1.Catalog/TransferMembers",
        Access::Roles(&[Operator]),
    ),
    // Disputes
    p(
        "/leadrouter.v1.Disputes/OpenDispute",
        Access::Roles(&[Operator, Reviewer]),
    ),
    p(
        "/leadrouter.v1.Disputes/ListDisputes",
        Access::Roles(&[Operator, Reviewer, Analyst]),
    ),
    p(
        "/leadrouter.v1.Disputes/GetDispute",
        Access::Roles(&[Operator, Reviewer, Analyst]),
    ),
    p(
        "/leadrouter.v1.Disputes/ResolveDispute",
        Access::Roles(&[Reviewer]),
    ),
    // Guides
    p(
        "/leadrouter.v1.Guides/ListGuideLeads",
        Access::Roles(&[GuideApp, Operator]),
    ),
    p(
        "/leadrouter.v1.Guides/ListStoreQueue",
        Access::Roles(&[GuideApp, Operator]),
    ),
    p(
        "/leadrouter.v1.Guides/ClaimQueuedLead",
        Access::Roles(&[GuideApp]),
    ),
    p(
        "/leadrouter.v1.Guides/WatchOffers",
        Access::Roles(&[GuideApp, Operator]),
    ),
    // Standard services
    p("/grpc.health.v1.Health/Check", Access::Open),
    p("/grpc.health.v1.Health/Watch", Access::Open),
    p(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Access::AnyKey,
    ),
    p(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Access::AnyKey,
    ),
    // HTTP
    p("/healthz", Access::Open),
    p("/metrics", Access::Roles(&[Monitoring])),
    // Guides.WatchOffers as Server-Sent Events.
    p("/v1/offers/events", Access::Roles(&[GuideApp, Operator])),
    // The reviewers' pages: open at the gate, they check their own sessions (a reviewer key
    // signs in; see server/review).
    p("/review", Access::Open),
    p("/review/", Access::Open),
    p("/review/login", Access::Open),
    p("/review/logout", Access::Open),
    p("/review/dispute", Access::Open),
    p("/review/resolve", Access::Open),
    p("/review/htmx.min.js", Access::Open),
    // The contract of the JSON surface, as public as the .proto files.
    p("/openapi.json", Access::Open),
];

/// The entry for a path, if the service answers it.
pub fn permission(path: &str) -> Option<&'static Permission> {
    PERMISSIONS.iter().find(|p| p.path == path)
}

impl Access {
    /// Whether `who` may call; the error names the roles needed.
    pub fn allows(&self, who: &Principal) -> Result<(), super::Denied> {
        match self {
            Access::Open | Access::AnyKey => Ok(()),
            Access::Roles(roles) => {
                if who.role == Role::Admin || roles.contains(&who.role) {
                    Ok(())
                } else {
                    let needed: Vec<&str> =
                        roles.iter().map(|r| r.as_str()).chain(["admin"]).collect();
                    Err(super::Denied(format!(
                        "key {:?} has role {}; this call needs role {}",
                        who.name,
                        who.role,
                        needed.join(" or ")
                    )))
                }
            }
        }
    }

    /// The roles listed (empty for Open and AnyKey).
    pub fn roles(&self) -> &'static [Role] {
        match self {
            Access::Roles(r) => r,
            _ => &[],
        }
    }
}
