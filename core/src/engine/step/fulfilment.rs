//! News about an order: placed, from the warehouse (`warehouse.*`) and
//! from the carrier (`carrier.*`).
//!
//! Each kind sets the order's facts (planned ship date, ETA, delivery,
//! the problem in a word); what those facts mean for a promise is for the
//! `check_promise` rule, which runs after.

use crate::Timestamp;
use crate::case::{Order, OrderId};
use crate::event::{EventError, Fulfilment};

use super::Stepper;

/// The order news kinds, typed once so that a new one must be handled
/// here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FulfilmentKind {
    /// `order.placed`: the order exists; it is linked to the case.
    Placed,
    /// `warehouse.planned`: the day the warehouse means to ship.
    Planned,
    /// `warehouse.delayed`: shipping slips, perhaps to a new day.
    Delayed,
    /// `warehouse.shipped`: it left the warehouse.
    Shipped,
    /// `warehouse.held`: kept back, perhaps until a day.
    Held,
    /// `warehouse.released`: a hold lifted.
    Released,
    /// `warehouse.backorder`: out of stock.
    Backorder,
    /// `carrier.eta`: the day the carrier expects to deliver.
    Eta,
    /// `carrier.delivered`: delivered, at the event's time.
    Delivered,
    /// `carrier.exception`: the carrier hit a problem.
    Exception,
}

impl FulfilmentKind {
    pub(super) fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "order.placed" => Self::Placed,
            "warehouse.planned" => Self::Planned,
            "warehouse.delayed" => Self::Delayed,
            "warehouse.shipped" => Self::Shipped,
            "warehouse.held" => Self::Held,
            "warehouse.released" => Self::Released,
            "warehouse.backorder" => Self::Backorder,
            "carrier.eta" => Self::Eta,
            "carrier.delivered" => Self::Delivered,
            "carrier.exception" => Self::Exception,
            _ => return None,
        })
    }

    /// What an event of this kind must carry, when `f` lacks it.
    fn missing(self, f: &Fulfilment) -> Option<&'static str> {
        match self {
            Self::Planned if f.ship_date.is_none() => {
                Some("`warehouse.planned` needs `ship_date: YYYY-MM-DD`")
            }
            Self::Eta if f.eta.is_none() => Some("`carrier.eta` needs `eta: YYYY-MM-DD`"),
            _ => None,
        }
    }

    /// Set on `order` the facts this news brings; `at` is when it happened.
    fn apply(self, order: &mut Order, f: &Fulfilment, at: Timestamp) {
        match self {
            Self::Placed => {}
            Self::Planned => order.planned_ship = f.ship_date,
            Self::Delayed => {
                if let Some(d) = f.ship_date {
                    order.planned_ship = Some(d);
                }
                order.problem = Some(f.reason.clone().unwrap_or_else(|| "delayed".into()));
            }
            Self::Shipped => {
                order.shipped_on = Some(f.ship_date.unwrap_or(at.date_naive()));
                order.held_until = None;
            }
            Self::Held => order.held_until = f.until,
            Self::Released => order.held_until = None,
            Self::Backorder => {
                order.backordered = true;
                order.problem = f.reason.clone().or(Some("backordered".into()));
            }
            Self::Eta => order.carrier_eta = f.eta,
            Self::Delivered => order.delivered_at = Some(at),
            Self::Exception => {
                order.problem = Some(
                    f.reason
                        .clone()
                        .unwrap_or_else(|| "carrier exception".into()),
                );
            }
        }
    }
}

impl Stepper<'_> {
    /// News about an order of this case: the order (found by id, or by a
    /// tracking number it already has) gets the facts.
    pub(super) fn fulfilment(
        &mut self,
        kind: FulfilmentKind,
        f: &Fulfilment,
    ) -> Result<(), EventError> {
        if let Some(c) = &f.customer {
            self.case.customer.merge(c);
        }
        let Some(order_id) = self.news_order() else {
            return Err(self.malformed(
                "needs `order:` (or a `tracking:` number already linked to an order)".into(),
            ));
        };
        if let Some(needs) = kind.missing(f) {
            return Err(self.malformed(needs.to_owned()));
        }
        let order = self.case.order_mut(&order_id);
        if let Some(t) = &self.event.tracking {
            order.tracking = Some(t.clone());
        }
        kind.apply(order, f, self.event.at);
        Ok(())
    }

    /// The order the news is about: the event's `order:`, else the order
    /// that already has the event's tracking number.
    fn news_order(&self) -> Option<OrderId> {
        match (&self.event.order, &self.event.tracking) {
            (Some(o), _) => Some(o.clone()),
            (None, Some(t)) => self
                .case
                .orders
                .iter()
                .find(|o| o.tracking.as_deref() == Some(t))
                .map(|o| o.id.clone()),
            _ => None,
        }
    }
}
