//! Where a lab runs: at the member that holds its datasets and offers its environment with room
//! (data first, then load), from what the members advertise. Every node computes the same answer
//! from the same adverts; the asking node wins a tie when it can host the lab itself, so a lab
//! asked for where its data lives starts there without a network hop.

use orrery_protocol::NodeId;
use orrery_protocol::advert::ComputeOffer;

/// What one member offers, as its advert (or, for the asking node, its own state) says.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The member.
    pub node: NodeId,
    /// The collections it holds whole.
    pub collections: Vec<String>,
    /// Its compute offers.
    pub compute: Vec<ComputeOffer>,
}

/// Why no member can host a lab, in words the researcher can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoHost {
    /// No member holds the datasets (all of them, whole).
    #[error(
        "no member of the federation holds {0} whole: search for the collection, or ask for fewer datasets at once"
    )]
    NoHolder(String),
    /// The holders do not offer the environment.
    #[error(
        "the members holding these datasets ({holders}) do not offer the environment `{environment}`"
    )]
    NotOffered {
        /// The environment asked for.
        environment: String,
        /// The holders, by short id.
        holders: String,
    },
    /// The holders offering it have no room now.
    #[error(
        "every member holding these datasets and offering `{0}` is full; try again later or stop a lab of yours"
    )]
    NoRoom(String),
}

/// The member that should run a lab of `environment` over `datasets`, `me` being the asking node.
pub fn place(
    me: NodeId,
    candidates: &[Candidate],
    environment: &str,
    datasets: &[String],
) -> Result<NodeId, NoHost> {
    let holds = |c: &Candidate| datasets.iter().all(|d| c.collections.contains(d));
    let holders: Vec<&Candidate> = candidates.iter().filter(|c| holds(c)).collect();
    if holders.is_empty() {
        let missing = datasets
            .iter()
            .find(|d| !candidates.iter().any(|c| c.collections.contains(d)));
        return Err(NoHost::NoHolder(match missing {
            Some(d) => format!("`{d}`"),
            None => format!("all of {}", datasets.join(", ")),
        }));
    }
    let offer = |c: &Candidate| -> Option<u32> {
        c.compute
            .iter()
            .find(|o| o.environment == environment)
            .map(|o| o.free_slots)
    };
    let offering: Vec<(&Candidate, u32)> = holders
        .iter()
        .filter_map(|c| offer(c).map(|free| (*c, free)))
        .collect();
    if offering.is_empty() {
        return Err(NoHost::NotOffered {
            environment: environment.to_owned(),
            holders: holders
                .iter()
                .map(|c| c.node.short())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let with_room = offering.iter().filter(|(_, free)| *free > 0);
    if offering.iter().any(|(c, free)| c.node == me && *free > 0) {
        return Ok(me);
    }
    with_room
        // Most room first; the lowest node id breaks a tie, the same on every node.
        .max_by(|(a, fa), (b, fb)| {
            fa.cmp(fb)
                .then(b.node.0.as_bytes().cmp(a.node.0.as_bytes()))
        })
        .map(|(c, _)| c.node)
        .ok_or_else(|| NoHost::NoRoom(environment.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_protocol::SecretKey;

    fn node() -> NodeId {
        NodeId(SecretKey::generate().expect("key").public())
    }

    fn offer(free: u32) -> ComputeOffer {
        ComputeOffer {
            environment: "jupyter".into(),
            cores: 1,
            memory_mib: 1024,
            gpus: 0,
            free_slots: free,
            lock: "abc".into(),
        }
    }

    fn at(node: NodeId, collections: &[&str], compute: Vec<ComputeOffer>) -> Candidate {
        Candidate {
            node,
            collections: collections.iter().map(|c| (*c).to_owned()).collect(),
            compute,
        }
    }

    fn ds(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn data_first_then_room() {
        let (me, b, c) = (node(), node(), node());
        let cands = [
            at(me, &[], vec![offer(8)]),
            at(b, &["gaia"], vec![offer(1)]),
            at(c, &["xmm"], vec![offer(5)]),
        ];
        assert_eq!(place(me, &cands, "jupyter", &ds(&["gaia"])), Ok(b));
        assert_eq!(place(me, &cands, "jupyter", &ds(&["xmm"])), Ok(c));
        assert_eq!(place(me, &cands, "jupyter", &[]), Ok(me), "no data: here");
    }

    #[test]
    fn the_asking_node_keeps_a_lab_over_data_it_holds() {
        let (me, b) = (node(), node());
        let cands = [
            at(me, &["gaia"], vec![offer(1)]),
            at(b, &["gaia"], vec![offer(7)]),
        ];
        assert_eq!(place(me, &cands, "jupyter", &ds(&["gaia"])), Ok(me));
        let full = [
            at(me, &["gaia"], vec![offer(0)]),
            at(b, &["gaia"], vec![offer(7)]),
        ];
        assert_eq!(place(me, &full, "jupyter", &ds(&["gaia"])), Ok(b));
    }

    #[test]
    fn every_node_picks_the_same_holder() {
        let (a, b, c, me1, me2) = (node(), node(), node(), node(), node());
        let cands = |me| {
            vec![
                at(me, &[], vec![]),
                at(a, &["gaia"], vec![offer(3)]),
                at(b, &["gaia"], vec![offer(3)]),
                at(c, &["gaia"], vec![offer(2)]),
            ]
        };
        let one = place(me1, &cands(me1), "jupyter", &ds(&["gaia"]));
        let two = place(me2, &cands(me2), "jupyter", &ds(&["gaia"]));
        assert_eq!(one, two);
        assert!(one == Ok(a) || one == Ok(b));
    }

    #[test]
    fn refusals_say_why() {
        let (me, b) = (node(), node());
        let none = [at(me, &[], vec![offer(1)])];
        assert!(matches!(
            place(me, &none, "jupyter", &ds(&["gaia"])),
            Err(NoHost::NoHolder(d)) if d.contains("gaia")
        ));
        let split = [
            at(me, &["gaia"], vec![offer(1)]),
            at(b, &["xmm"], vec![offer(1)]),
        ];
        assert!(matches!(
            place(me, &split, "jupyter", &ds(&["gaia", "xmm"])),
            Err(NoHost::NoHolder(_))
        ));
        let bare = [at(b, &["gaia"], vec![])];
        assert!(matches!(
            place(me, &bare, "jupyter", &ds(&["gaia"])),
            Err(NoHost::NotOffered { .. })
        ));
        let full = [at(b, &["gaia"], vec![offer(0)])];
        assert_eq!(
            place(me, &full, "jupyter", &ds(&["gaia"])),
            Err(NoHost::NoRoom("jupyter".into()))
        );
    }
}
