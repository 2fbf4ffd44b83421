//! The workflow as a picture that can be read: one node per state with
//! its case count, one arrow per (from, to) pair listing every event that
//! takes it, the happy path (initial state to a terminal one) as a
//! straight spine, and the moves that start from (nearly) every open
//! state summarised in one note instead of an arrow from each.
//!
//! The layout is computed here (a grid around the spine: each other state
//! sits next to the spine state it is most tied to); the SVG is written by
//! the console's template `workflow.svg`, so every name goes through the
//! template engine's escaping like the rest of the console.

use std::collections::{BTreeMap, HashMap, VecDeque};

use casework_core::workflow::Workflow;
use serde::Serialize;

/// A transition whose `from` lists at least this many states is drawn in
/// the note, not as arrows.
const MANY: usize = 4;
const NODE_W: f64 = 180.0;
const NODE_H: f64 = 56.0;
/// Half the distance between two spine states: other states may sit
/// between them, a row above or below.
const HALF: f64 = 165.0;
const ROW: f64 = 160.0;
const MARGIN: f64 = 40.0;
/// Event names shown on one arrow before "+N more".
const LABEL_LINES: usize = 4;

/// Everything the template draws.
#[derive(Debug, Serialize)]
pub struct Drawing {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<EdgeLine>,
    /// The summarised moves: `from` wording, event, target.
    pub note: Vec<NoteLine>,
    pub note_x: f64,
    pub note_y: f64,
    pub note_h: f64,
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub count: usize,
    /// `initial`, `terminal`, `waiting` or `plain`, for the style.
    pub class: &'static str,
    pub spine: bool,
    pub description: String,
    pub pauses_sla: bool,
}

#[derive(Debug, Serialize)]
pub struct EdgeLine {
    pub from: String,
    pub to: String,
    /// SVG path data.
    pub path: String,
    pub label_x: f64,
    pub label_y: f64,
    pub label_w: f64,
    pub lines: Vec<String>,
    pub spine: bool,
    /// Every event of this arrow is a timeout.
    pub timeout: bool,
}

#[derive(Debug, Serialize)]
pub struct NoteLine {
    pub from: String,
    pub on: String,
    pub to: String,
}

/// One merged arrow while laying out.
#[derive(Default)]
struct Merged {
    events: Vec<String>,
    timeouts: usize,
}

/// Lay `workflow` out; `counts` are the cases per state.
pub fn layout(workflow: &Workflow, counts: &BTreeMap<String, usize>) -> Drawing {
    let states: Vec<String> = workflow.states().map(|(s, _)| s.0.clone()).collect();
    let open: Vec<&String> = states.iter().filter(|s| !workflow.is_terminal(s)).collect();

    // Every (from, to) pair a transition or timeout connects, for the
    // spine: the happy path may run through a wide transition
    // (`agent.resolve` from most states).
    let mut all: BTreeMap<(String, String), Merged> = BTreeMap::new();
    for t in workflow.transitions().iter().filter(|t| !t.from_any) {
        for f in &t.from {
            all.entry((f.0.clone(), t.to.0.clone())).or_default();
        }
    }
    for s in &states {
        if let Some(timeout) = workflow.timeout(s) {
            all.entry((s.clone(), timeout.to.0.clone())).or_default();
        }
    }
    let spine = spine(workflow, &all);
    let on_spine = |from: &str, to: &str| spine.windows(2).any(|w| w[0] == from && w[1] == to);

    // Merge: one arrow per (from, to); wide transitions to the note,
    // except on the spine, whose arrows list every event that takes them.
    let mut merged: BTreeMap<(String, String), Merged> = BTreeMap::new();
    let mut wide_on_spine: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut note = Vec::new();
    for t in workflow.transitions() {
        let mut on = t.on.clone();
        if t.guard.is_some() {
            on.push_str(" [guard]");
        }
        if !t.from_any && t.from.len() >= MANY {
            for f in t
                .from
                .iter()
                .filter(|f| on_spine(f.as_str(), t.to.as_str()))
            {
                let events = wide_on_spine
                    .entry((f.0.clone(), t.to.0.clone()))
                    .or_default();
                if !events.contains(&on) {
                    events.push(on.clone());
                }
            }
        }
        if t.from_any || t.from.len() >= MANY {
            let from = if t.from_any || t.from.len() == open.len() {
                "any open state".to_owned()
            } else {
                let names: Vec<&str> = t.from.iter().map(|f| f.as_str()).collect();
                names.join(", ")
            };
            note.push(NoteLine {
                from,
                on,
                to: t.to.0.clone(),
            });
            continue;
        }
        for f in &t.from {
            let m = merged.entry((f.0.clone(), t.to.0.clone())).or_default();
            if !m.events.contains(&on) {
                m.events.push(on.clone());
            }
        }
    }
    // A spine arrow made only of wide transitions still names them.
    for (pair, events) in wide_on_spine {
        let m = merged.entry(pair).or_default();
        if m.events.is_empty() {
            m.events = events;
        }
    }
    // `on [guard]` next to a plain `on`: the plain one says it.
    for m in merged.values_mut() {
        let plain: Vec<String> = m.events.clone();
        m.events.retain(|e| {
            e.strip_suffix(" [guard]")
                .is_none_or(|bare| !plain.iter().any(|p| p == bare))
        });
    }
    for s in &states {
        if let Some(timeout) = workflow.timeout(s) {
            let after = humantime::format_duration(timeout.after.to_std().unwrap_or_default());
            let biz = if timeout.business { " business" } else { "" };
            let m = merged.entry((s.clone(), timeout.to.0.clone())).or_default();
            m.events.push(format!("after {after}{biz}"));
            m.timeouts += 1;
        }
    }

    // Columns are half steps: spine states on even ones, others anywhere
    // a row above or below, never closer than a full step in one row.
    let mut place: HashMap<String, (i32, i32)> = spine
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), (2 * i as i32, 0)))
        .collect();
    let ties = |s: &str, place: &HashMap<String, (i32, i32)>| -> Vec<i32> {
        merged
            .keys()
            .filter_map(|(from, to)| {
                let other = if from == s {
                    to
                } else if to == s {
                    from
                } else {
                    return None;
                };
                (other != s)
                    .then(|| place.get(other).map(|p| p.0))
                    .flatten()
            })
            .collect()
    };
    // Most connected first, each near the mean column of the states it is
    // tied to; waiting states below the spine, the others above.
    let mut others: Vec<(String, usize)> = states
        .iter()
        .filter(|s| !place.contains_key(*s))
        .map(|s| {
            let n = merged.keys().filter(|(f, t)| f == s || t == s).count();
            (s.clone(), n)
        })
        .collect();
    others.sort_by_key(|(s, n)| (std::cmp::Reverse(*n), s.clone()));
    let cols = 2 * (spine.len().max(1) as i32 - 1);
    for (s, _) in others {
        let tied = ties(&s, &place);
        let anchor = if tied.is_empty() {
            f64::from(cols) / 2.0
        } else {
            f64::from(tied.iter().sum::<i32>()) / tied.len() as f64
        };
        let waiting = workflow.state(&s).is_some_and(|d| d.waiting);
        let rows: [i32; 4] = if waiting {
            [1, 2, -1, -2]
        } else {
            [-1, -2, 1, 2]
        };
        let mut best: Option<(f64, (i32, i32))> = None;
        for (rank, row) in rows.iter().enumerate() {
            for col in 0..=cols.max(0) {
                let crowded = place.values().any(|p| p.1 == *row && (p.0 - col).abs() < 2);
                if crowded {
                    continue;
                }
                let cost = (f64::from(col) - anchor).abs() + 1.6 * rank as f64;
                if best.is_none_or(|(c, _)| cost < c) {
                    best = Some((cost, (col, *row)));
                }
            }
        }
        let spot = best.map_or((cols + 2, 0), |(_, p)| p);
        place.insert(s, spot);
    }

    let top = place.values().map(|p| p.1).min().unwrap_or(0);
    let bottom = place.values().map(|p| p.1).max().unwrap_or(0);
    let right = place.values().map(|p| p.0).max().unwrap_or(0);
    let note_w = note
        .iter()
        .map(|n| (n.from.len() + n.on.len() + n.to.len() + 12) as f64 * 6.6 + 24.0)
        .fold(0.0, f64::max);
    let note_h = if note.is_empty() {
        0.0
    } else {
        30.0 + 18.0 * note.len() as f64
    };
    let y0 = MARGIN + note_h + if note_h > 0.0 { 30.0 } else { 0.0 };
    let centre = |(col, row): (i32, i32)| {
        (
            MARGIN + NODE_W / 2.0 + f64::from(col) * HALF,
            y0 + NODE_H / 2.0 + f64::from(row - top) * ROW,
        )
    };

    let nodes = states
        .iter()
        .map(|s| {
            let def = workflow.state(s);
            let (cx, cy) = centre(place[s]);
            let class = match def {
                Some(d) if d.initial => "initial",
                Some(d) if d.terminal => "terminal",
                Some(d) if d.waiting => "waiting",
                _ => "plain",
            };
            Node {
                name: s.clone(),
                x: cx - NODE_W / 2.0,
                y: cy - NODE_H / 2.0,
                w: NODE_W,
                h: NODE_H,
                count: counts.get(s).copied().unwrap_or(0),
                class,
                spine: spine.contains(s),
                description: def.and_then(|d| d.description.clone()).unwrap_or_default(),
                pauses_sla: def.is_some_and(|d| d.pauses_sla),
            }
        })
        .collect();

    // Boxes already taken on the page (states, then labels as they are
    // placed), so labels can step aside.
    let mut taken: Vec<(f64, f64, f64, f64)> = place
        .values()
        .map(|p| {
            let (cx, cy) = centre(*p);
            (cx - NODE_W / 2.0, cy - NODE_H / 2.0, NODE_W, NODE_H)
        })
        .collect();
    let mut edges = Vec::new();
    for ((from, to), m) in &merged {
        if from == to {
            continue; // staying put: shown in the state's tooltip instead
        }
        let (a, b) = (centre(place[from]), centre(place[to]));
        let on_spine = on_spine(from, to);
        // Arrows both ways between two states bend apart.
        let both = merged.contains_key(&(to.clone(), from.clone()));
        let (start, end) = (border(a, b), border(b, a));
        let (mx, my) = ((start.0 + end.0) / 2.0, (start.1 + end.1) / 2.0);
        let (dx, dy) = (end.0 - start.0, end.1 - start.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        // Short arrows bend less, so a pair between neighbours stays apart
        // without looping round.
        let bend = if on_spine && !both {
            0.0
        } else if both {
            (len * 0.12).min(38.0)
        } else {
            (len * 0.08).min(24.0)
        };
        let (nx, ny) = (-dy / len, dx / len);
        let (qx, qy) = (mx + nx * bend * 2.0, my + ny * bend * 2.0);
        let mut lines: Vec<String> = m.events.iter().take(LABEL_LINES).cloned().collect();
        if m.events.len() > LABEL_LINES {
            lines.push(format!("+{} more", m.events.len() - LABEL_LINES));
        }
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let label_w = widest as f64 * 6.4 + 10.0;
        let label_h = lines.len() as f64 * 14.0 + 4.0;
        // The curve's midpoint, then steps along the curve's normal until
        // the label overlaps nothing drawn so far.
        let (lx, ly) = (
            (mx + qx) / 2.0,
            (my + qy) / 2.0 - 7.0 * (lines.len() as f64 - 1.0),
        );
        let overlaps = |x: f64, y: f64, taken: &[(f64, f64, f64, f64)]| {
            let (x0, y0) = (x - label_w / 2.0, y - 12.0);
            taken.iter().any(|(tx, ty, tw, th)| {
                x0 < tx + tw && tx < &(x0 + label_w) && y0 < ty + th && ty < &(y0 + label_h)
            })
        };
        let mut spot = (lx, ly);
        for step in 1..=16 {
            if !overlaps(spot.0, spot.1, &taken) {
                break;
            }
            let k = f64::from((step + 1) / 2) * 9.0 * if step % 2 == 0 { -1.0 } else { 1.0 };
            let (ux, uy) = if nx.abs() > 0.3 { (0.0, 1.0) } else { (nx, ny) };
            spot = (lx + ux * k, ly + uy * k);
        }
        taken.push((spot.0 - label_w / 2.0, spot.1 - 12.0, label_w, label_h));
        edges.push(EdgeLine {
            from: from.clone(),
            to: to.clone(),
            path: format!(
                "M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}",
                start.0, start.1, qx, qy, end.0, end.1
            ),
            label_x: spot.0,
            label_y: spot.1,
            label_w,
            lines,
            spine: on_spine,
            timeout: m.timeouts == m.events.len(),
        });
    }
    Drawing {
        width: (MARGIN * 2.0 + NODE_W + f64::from(right) * HALF).max(note_w + 2.0 * MARGIN),
        height: y0 + NODE_H + f64::from(bottom - top) * ROW + MARGIN,
        nodes,
        edges,
        note,
        note_x: MARGIN,
        note_y: MARGIN,
        note_h,
    }
}

/// Where the line from the centre `a` towards `b` leaves a's box.
fn border(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if dx == 0.0 && dy == 0.0 {
        return a;
    }
    let sx = if dx == 0.0 {
        f64::INFINITY
    } else {
        (NODE_W / 2.0 + 4.0) / dx.abs()
    };
    let sy = if dy == 0.0 {
        f64::INFINITY
    } else {
        (NODE_H / 2.0 + 4.0) / dy.abs()
    };
    let s = sx.min(sy);
    (a.0 + dx * s, a.1 + dy * s)
}

/// The happy path: the shortest way along the arrows from the initial
/// state to a terminal one (breadth first; among equals, through the
/// states with the most arrows, the hubs where work is done).
fn spine(workflow: &Workflow, merged: &BTreeMap<(String, String), Merged>) -> Vec<String> {
    let mut degree: HashMap<&str, usize> = HashMap::new();
    for (from, to) in merged.keys() {
        *degree.entry(from).or_default() += 1;
        *degree.entry(to).or_default() += 1;
    }
    let start = workflow.initial().0.clone();
    let mut prev: HashMap<String, String> = HashMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    let mut seen = vec![start.clone()];
    while let Some(s) = queue.pop_front() {
        if workflow.is_terminal(&s) {
            let mut path = vec![s.clone()];
            let mut at = s;
            while let Some(p) = prev.get(&at) {
                path.push(p.clone());
                at = p.clone();
            }
            path.reverse();
            return path;
        }
        let mut next: Vec<&String> = merged
            .keys()
            .filter(|(from, to)| *from == s && !seen.contains(to))
            .map(|(_, to)| to)
            .collect();
        next.sort_by_key(|t| std::cmp::Reverse(degree.get(t.as_str()).copied().unwrap_or(0)));
        for to in next {
            seen.push(to.clone());
            prev.insert(to.clone(), s.clone());
            queue.push_back(to.clone());
        }
    }
    vec![start]
}
