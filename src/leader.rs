//! Leader election on a `coordination.k8s.io` Lease: any number of replicas,
//! one writer. The holder renews every few seconds; a lease not renewed for
//! its duration is free to take. Writes use the Lease's resourceVersion, so
//! two candidates can never both win one round.
//!
//! One elector per process: [`Leadership::start`] runs it and tells the
//! score collector and the controller, through a watch channel, whether this
//! replica leads.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::k8s::NamespacedName;
use crate::tasks::Tasks;

/// How often the leader renews its lease (and others try to take it).
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// How long a stopping leader tries to release its lease.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Fires whenever the lease has no holder (its leader let it go); a
/// watch, so a standby need not poll. Watch errors are retried with
/// backoff and never end the stream.
fn lease_freed(
    client: Client,
    lease: &NamespacedName,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let api: Api<Lease> = Api::namespaced(client, &lease.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", lease.name));
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|l| {
            let free = l.is_ok_and(|l| {
                l.spec
                    .and_then(|s| s.holder_identity)
                    .is_none_or(|h| h.is_empty())
            });
            std::future::ready(free.then_some(()))
        })
}

/// Whether this replica leads, as the elector last saw it.
#[derive(Clone)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Keeps a fixed channel open (see [`Leadership::fixed`]).
    _fixed: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// Runs the elector as a task in `tasks` until `stop`; a replica that
    /// cannot reach the API server stops leading at once (another may take
    /// over after the lease expires, and two writers must never overlap).
    /// On `stop` a leader releases the lease, so a standby takes over at
    /// once instead of after the lease duration; give `stop` only after the
    /// leader's work has stopped.
    pub fn start(
        client: Client,
        lease: &NamespacedName,
        identity: &str,
        stop: CancellationToken,
        tasks: &mut Tasks,
    ) -> Self {
        let elector = LeaderElector::new(
            client.clone(),
            &lease.namespace,
            &lease.name,
            identity,
            LEASE_DURATION,
        );
        let (tx, rx) = watch::channel(false);
        let freed = lease_freed(client, lease);
        tasks.spawn("leader election", async move {
            let mut freed = std::pin::pin!(freed);
            loop {
                let (leading, next) = match elector.try_lead().await {
                    Ok(Attempt::Leading) => (true, RENEW_EVERY),
                    // Try again the moment the holder's lease runs out, so a
                    // dead leader is replaced within the lease duration.
                    Ok(Attempt::HeldFor(left)) => {
                        (false, RENEW_EVERY.min(left + Duration::from_millis(50)))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lease update failed; not leading until it works");
                        (false, RENEW_EVERY)
                    }
                };
                tx.send_if_modified(|was| {
                    if *was != leading {
                        tracing::info!(
                            identity = elector.identity(),
                            leading,
                            "leadership changed"
                        );
                        *was = leading;
                        true
                    } else {
                        false
                    }
                });
                tokio::select! {
                    _ = stop.cancelled() => {
                        tx.send_replace(false);
                        if leading {
                            elector.release().await;
                        }
                        return;
                    }
                    _ = tokio::time::sleep(next) => {}
                    // A standby tries at once when the leader lets go.
                    _ = freed.next(), if !leading => {}
                }
            }
        });
        Self {
            leading: rx,
            _fixed: None,
        }
    }

    /// A fixed answer, for tests and single-replica tools.
    pub fn fixed(leading: bool) -> Self {
        let (tx, rx) = watch::channel(leading);
        Self {
            leading: rx,
            _fixed: Some(std::sync::Arc::new(tx)),
        }
    }

    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Resolves once this replica leads; never, once the elector stopped.
    pub async fn until_leading(&mut self) {
        if self.leading.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once this replica no longer leads (or the elector stopped).
    pub async fn until_not_leading(&mut self) {
        let _ = self.leading.wait_for(|l| !*l).await;
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// The outcome of one election round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the lease.
    Leading,
    /// Another replica holds it for about this long yet (zero when a write
    /// race was lost: look again soon).
    HeldFor(Duration),
}

/// Whether `me` may write the lease now.
pub fn may_take(
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    duration: Duration,
    me: &str,
    now: Timestamp,
) -> bool {
    match (holder, renewed) {
        (Some(h), _) if h == me => true,
        (None, _) | (Some(""), _) | (_, None) => true,
        (Some(_), Some(at)) => {
            let expiry = at.checked_add(duration).unwrap_or(at);
            now > expiry
        }
    }
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Gives the lease up if this replica holds it: no holder, renewed now,
    /// so a standby may take it at once. Failures are logged; the lease
    /// then simply expires.
    pub async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(false);
            };
            let mut spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            lease.spec = Some(spec);
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, result).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.name, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.name, error = %e, "cannot release the lease; it expires instead")
            }
            Err(_) => {
                tracing::warn!(lease = %self.name, "releasing the lease timed out; it expires instead")
            }
        }
    }

    /// Takes or renews the lease.
    pub async fn try_lead(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leading),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Ok(Attempt::HeldFor(Duration::ZERO))
                    }
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.as_deref();
                let renewed = spec.renew_time.as_ref().map(|t| t.0);
                let held_by_other = spec
                    .lease_duration_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or(self.duration);
                if !may_take(holder, renewed, held_by_other, &self.identity, now) {
                    let left = renewed
                        .and_then(|at| at.checked_add(held_by_other).ok())
                        .and_then(|expiry| {
                            std::time::Duration::try_from(expiry.duration_since(now)).ok()
                        })
                        .unwrap_or(Duration::ZERO);
                    return Ok(Attempt::HeldFor(left));
                }
                let taking_over = holder != Some(self.identity.as_str());
                let mut new = spec.clone();
                new.holder_identity = Some(self.identity.clone());
                new.lease_duration_seconds = Some(seconds);
                new.renew_time = Some(MicroTime(now));
                if taking_over {
                    new.acquire_time = Some(MicroTime(now));
                    new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                lease.spec = Some(new);
                // replace carries metadata.resourceVersion: a concurrent
                // writer makes this a 409 instead of a second leader.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => {
                        if taking_over {
                            tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                        }
                        Ok(Attempt::Leading)
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Ok(Attempt::HeldFor(Duration::ZERO))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_rules() {
        let now = Timestamp::from_second(1_000).unwrap();
        let d = Duration::from_secs(15);
        let recent = Some(Timestamp::from_second(990).unwrap());
        let stale = Some(Timestamp::from_second(900).unwrap());
        assert!(may_take(None, None, d, "me", now), "free lease");
        assert!(may_take(Some("me"), recent, d, "me", now), "renew my own");
        assert!(
            !may_take(Some("other"), recent, d, "me", now),
            "someone else leads"
        );
        assert!(
            may_take(Some("other"), stale, d, "me", now),
            "expired: take over"
        );
    }
}
