//! From a rate the stack already serves to a higher one: a second-by-second simulation of the
//! limits that grow by themselves (an on-demand table doubling its previous peak within 30
//! minutes, a function adding 1,000 environments every 10 s, the SQS mapping adding 300
//! concurrent batches a minute), with every other limit fixed. For each limit that throttles:
//! when it starts, when it stops, and how many orders it turns away (refused) or holds back
//! (delayed) meanwhile.

use serde::Serialize;

use super::config::{Config, Function};
use super::limits;
use super::model::{Check, Effect, PerOrder};

/// The simulation stops this long after the ramp ends, throttling or not.
pub const HORIZON_SECONDS: u64 = 24 * 3_600;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttled {
    pub id: String,
    pub resource: String,
    pub effect: Effect,
    pub first_throttled_second: u64,
    /// The first second from which it never throttles again (`None`: still throttling at the
    /// end: it does not grow by itself, raise its lever).
    pub stops_throttling_second: Option<u64>,
    /// Orders over this limit alone, summed over the seconds it throttled.
    pub orders_over: f64,
    pub lever: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ramp {
    pub from_rate: f64,
    pub to_rate: f64,
    pub ramp_seconds: u64,
    pub simulated_seconds: u64,
    /// Orders refused (the tightest refusing limit each second), and the first second from
    /// which none is.
    pub refused_orders: f64,
    pub stops_refusing_second: Option<u64>,
    /// Orders taken but held back by the tightest delaying limit each second.
    pub delayed_orders: f64,
    pub stops_delaying_second: Option<u64>,
    pub throttled: Vec<Throttled>,
}

/// How a limit's capacity, in orders/s, moves over the ramp.
enum Growth {
    Fixed,
    /// On demand: the capacity (in units/s) becomes twice the peak served once per window.
    Doubling {
        per_order: f64,
        capacity: f64,
        window_peak: f64,
    },
    /// Concurrency that grows by `per_second` up to `cap`; `per_order` is the concurrency an
    /// order/s takes.
    Linear {
        per_order: f64,
        concurrency: f64,
        per_second: f64,
        cap: f64,
    },
}

struct Tracked {
    check: Check,
    growth: Growth,
    first: Option<u64>,
    last: Option<u64>,
    over: f64,
}

impl Tracked {
    fn capacity(&self) -> f64 {
        match &self.growth {
            Growth::Fixed => self.check.max_orders_per_second.unwrap_or(f64::INFINITY),
            Growth::Doubling {
                per_order,
                capacity,
                ..
            } => capacity / per_order,
            Growth::Linear {
                per_order,
                concurrency,
                ..
            } => concurrency / per_order,
        }
    }

    fn grows(&self) -> bool {
        !matches!(self.growth, Growth::Fixed)
    }
}

/// `checks` are the steady-state checks at `to_rate` ([`super::model::checks`]).
pub fn simulate(
    config: &Config,
    per: &PerOrder,
    checks: &[Check],
    from_rate: f64,
    to_rate: f64,
    ramp_seconds: u64,
) -> Ramp {
    let doubling = limits::ON_DEMAND_DOUBLING_SECONDS.value as u64;
    let mut tracked: Vec<Tracked> = checks
        .iter()
        .filter(|c| c.max_orders_per_second.is_some())
        .map(|check| {
            let growth = growth_of(config, per, check, from_rate);
            Tracked {
                check: check.clone(),
                growth,
                first: None,
                last: None,
                over: 0.0,
            }
        })
        .collect();
    tracked.push(ingest_scaling(config, per, from_rate, to_rate));
    let demand = |t: u64| {
        if ramp_seconds == 0 || t >= ramp_seconds {
            to_rate
        } else {
            from_rate + (to_rate - from_rate) * t as f64 / ramp_seconds as f64
        }
    };
    let (mut refused, mut delayed) = (0.0, 0.0);
    let (mut last_refused, mut last_delayed) = (None, None);
    let end = ramp_seconds + HORIZON_SECONDS;
    let mut t = 0;
    while t < end {
        let d = demand(t);
        let mut tightest = [f64::INFINITY, f64::INFINITY];
        for item in &mut tracked {
            // Concurrency grows toward what this second's demand needs, by at most its rate:
            // the environments (or batches) started in a second serve in it.
            if let Growth::Linear {
                per_order,
                concurrency,
                per_second,
                cap,
            } = &mut item.growth
            {
                let need = (d * *per_order).min(*cap);
                *concurrency = concurrency.max(need.min(*concurrency + *per_second));
            }
            let capacity = item.capacity();
            let served = d.min(capacity);
            if d > capacity + 1e-9 {
                item.first.get_or_insert(t);
                item.last = Some(t);
                item.over += d - capacity;
            }
            let slot = match item.check.effect {
                Effect::Refused => 0,
                Effect::Delayed => 1,
            };
            tightest[slot] = tightest[slot].min(capacity);
            match &mut item.growth {
                Growth::Fixed => {}
                Growth::Doubling {
                    per_order,
                    capacity,
                    window_peak,
                } => {
                    *window_peak = window_peak.max(served * *per_order);
                    if (t + 1) % doubling == 0 {
                        *capacity = capacity.max(2.0 * *window_peak);
                        *window_peak = 0.0;
                    }
                }
                Growth::Linear { .. } => {}
            }
        }
        if d > tightest[0] + 1e-9 {
            refused += d - tightest[0];
            last_refused = Some(t);
        }
        if d.min(tightest[0]) > tightest[1] + 1e-9 {
            delayed += d.min(tightest[0]) - tightest[1];
            last_delayed = Some(t);
        }
        t += 1;
        // After the ramp, once every growing limit keeps up, nothing changes any more.
        if t >= ramp_seconds
            && tracked
                .iter()
                .filter(|i| i.grows())
                .all(|i| i.capacity() + 1e-9 >= to_rate)
        {
            break;
        }
    }
    let simulated = t;
    // Whether a limit still throttles once everything that grows has grown (or the horizon
    // is reached): then it never stops by itself.
    let keeps_throttling = |capacity: f64| capacity + 1e-9 < to_rate;
    let stops = |last: Option<u64>, throttling: bool| match last {
        None => Some(0),
        Some(_) if throttling => None,
        Some(l) => Some(l + 1),
    };
    let tightest_at_end = |effect: Effect| {
        tracked
            .iter()
            .filter(|i| i.check.effect == effect)
            .map(Tracked::capacity)
            .fold(f64::INFINITY, f64::min)
    };
    let refusing_at_end = keeps_throttling(tightest_at_end(Effect::Refused));
    // What is taken is at most what the refusing limits let in.
    let taken = tightest_at_end(Effect::Refused).min(to_rate);
    let delaying_at_end = tightest_at_end(Effect::Delayed) + 1e-9 < taken;
    let mut throttled: Vec<Throttled> = tracked
        .iter()
        .filter_map(|item| {
            let first = item.first?;
            Some(Throttled {
                id: item.check.id.clone(),
                resource: item.check.resource.clone(),
                effect: item.check.effect,
                first_throttled_second: first,
                stops_throttling_second: stops(item.last, keeps_throttling(item.capacity())),
                orders_over: item.over.round(),
                lever: item.check.lever.clone(),
            })
        })
        .collect();
    throttled.sort_by_key(|t| (t.first_throttled_second, t.id.clone()));
    Ramp {
        from_rate,
        to_rate,
        ramp_seconds,
        simulated_seconds: simulated,
        refused_orders: refused.round(),
        stops_refusing_second: stops(last_refused, refusing_at_end),
        delayed_orders: delayed.round(),
        stops_delaying_second: stops(last_delayed, delaying_at_end),
        throttled,
    }
}

fn growth_of(config: &Config, per: &PerOrder, check: &Check, from_rate: f64) -> Growth {
    let id = check.id.as_str();
    let Some(max) = check.max_orders_per_second.filter(|m| *m > 0.0) else {
        return Growth::Fixed;
    };
    if id.starts_with("dynamodb.") && id.ends_with(".warm") {
        let per_order = check.limit / max;
        // A table that has served `from_rate` takes twice that at once.
        let capacity = check.limit.max(2.0 * per_order * from_rate);
        return Growth::Doubling {
            per_order,
            capacity,
            window_peak: 0.0,
        };
    }
    if id == "sqs.processor-mapping" {
        let pollers = config.processor_max_pollers.is_some();
        let start_floor = if pollers {
            2.0 * limits::SQS_POLLER_INVOCATIONS.value
        } else {
            limits::SQS_ESM_START.value
        };
        let per_minute = if pollers {
            limits::SQS_POLLER_RAMP_PER_MINUTE.value
        } else {
            limits::SQS_ESM_RAMP_PER_MINUTE.value
        };
        let per_order = per.processor_concurrency;
        return Growth::Linear {
            per_order,
            concurrency: (per_order * from_rate).max(start_floor).min(check.limit),
            per_second: per_minute / 60.0,
            cap: check.limit,
        };
    }
    Growth::Fixed
}

/// The ingest function's own scaling: 1,000 more environments every 10 s, from what
/// `from_rate` keeps busy, up to its reserved concurrency or the account's. (The account's
/// limit, shared by all five functions, is a check of its own.)
fn ingest_scaling(config: &Config, per: &PerOrder, from_rate: f64, to_rate: f64) -> Tracked {
    let per_order = per.concurrency(Function::Ingest);
    let cap = config
        .reserved
        .get(&Function::Ingest)
        .copied()
        .unwrap_or(config.account_concurrency);
    let check = Check {
        id: "lambda.ingest.scaling".to_owned(),
        resource: "ingest function, new environments (1,000 per 10 s)".to_owned(),
        need: per_order * to_rate,
        limit: cap,
        unit: "concurrent executions",
        utilisation: per_order * to_rate / cap,
        max_orders_per_second: Some(cap / per_order),
        below_rate: cap / per_order < to_rate,
        kind: super::model::Kind::Quota,
        effect: Effect::Refused,
        lever: "a slower ramp, or warm environments (provisioned concurrency) before it".to_owned(),
        source: limits::LAMBDA_SCALING_PER_10S.source,
    };
    Tracked {
        check,
        growth: Growth::Linear {
            per_order,
            concurrency: (per_order * from_rate).min(cap),
            per_second: limits::LAMBDA_SCALING_PER_10S.value / 10.0,
            cap,
        },
        first: None,
        last: None,
        over: 0.0,
    }
}
