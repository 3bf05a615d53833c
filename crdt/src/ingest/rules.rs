//! Stage 6: what role a change needs, and what role its author had in its causal past.

use super::*;

/// What a change does, as far as permissions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needs {
    pub(crate) role: Role,
    pub(crate) action: &'static str,
    /// For a computing node's change: the run it records. The role is then the requester's.
    pub(crate) run: Option<Rc<super::RunClaim>>,
}

impl Needs {
    /// A need of `role` for `action`.
    pub(crate) fn of(role: Role, action: &'static str) -> Needs {
        Needs {
            role,
            action,
            run: None,
        }
    }

    /// Whose role is judged for `author`'s change: the requester's for a run change.
    pub(crate) fn judged_author(&self, author: AuthorId) -> AuthorId {
        self.run.as_ref().map_or(author, |c| c.requester)
    }
}

pub(crate) struct Item {
    pub(crate) hash: ChangeHash,
    pub(crate) author: AuthorId,
    /// Shared so that applying can move it into the document without a copy.
    pub(crate) change: Rc<Change>,
}

/// The role of `author` in the members map as of `heads`.
pub(crate) fn role_at(
    doc: &Automerge,
    members: &ObjId,
    author: &AuthorId,
    heads: &[automerge::ChangeHash],
) -> Option<Role> {
    if crate::project::founder_of(members) == Some(*author) {
        return Some(Role::Owner);
    }
    let value = doc.get_at(members, author.to_string(), heads).ok()??;
    match value.0 {
        automerge::Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// What role a change needs, from its operations. `Ok(None)` means plain content.
pub(crate) fn classify(it: &Item, roots: Option<&Roots>) -> Result<Option<Needs>, IngestError> {
    let members = roots.map(|r| &r.members);
    let profiles_id = match roots.map(|r| &r.profiles) {
        Some(ObjId::Id(counter, actor, _)) => Some((*counter, actor.clone())),
        _ => None,
    };
    let expanded = guarded("decoding a change", || it.change.decode())?;
    if let Some(claim) = super::run::run_claim(it, &expanded.operations)? {
        // Its operations are confined to one cell's outputs; which cell, and the requester's
        // role, are judged against the document.
        return Ok(Some(Needs {
            role: Role::Editor,
            action: "record a run's outputs",
            run: Some(Rc::new(claim)),
        }));
    }
    let members_id = match members {
        Some(ObjId::Id(counter, actor, _)) => Some((*counter, actor.clone())),
        _ => None,
    };
    let mut need: Option<Needs> = None;
    let forbidden = |key: &str, why| IngestError::Forbidden {
        hash: it.hash,
        key: key.to_string(),
        why,
    };
    for op in &expanded.operations {
        match &op.obj {
            ObjectId::Root => {
                let key = match &op.key {
                    Key::Map(k) => k.as_str(),
                    Key::Seq(_) => return Err(forbidden("root", "is not a list")),
                };
                // A delete is what automerge emits for an honest `put` of the value that already
                // wins a conflict: it deletes the losing values. It must pass like the put.
                match root_key_rule(key) {
                    Some(Role::Owner) if key == K_PRESERVATION => {
                        let ok = match &op.action {
                            OpType::Delete => true,
                            OpType::Put(ScalarValue::Str(v)) => {
                                crate::project::parse_policy(v).is_some()
                            }
                            _ => false,
                        };
                        if !ok {
                            return Err(forbidden(key, "must be a preservation policy"));
                        }
                        need = Some(Needs::of(Role::Owner, "set the preservation policy"));
                    }
                    Some(Role::Owner) if key == K_ENVIRONMENT => {
                        let ok = match &op.action {
                            OpType::Delete => true,
                            OpType::Put(ScalarValue::Str(v)) => {
                                crate::project::PinnedEnvironment::parse(v).is_some()
                            }
                            _ => false,
                        };
                        if !ok {
                            return Err(forbidden(key, "must be a pinned environment"));
                        }
                        need = Some(Needs::of(Role::Owner, "pin the environment"));
                    }
                    Some(Role::Owner) => {
                        let ok = match &op.action {
                            OpType::Delete => true,
                            OpType::Put(ScalarValue::Str(v)) => v.parse::<Visibility>().is_ok(),
                            _ => false,
                        };
                        if !ok {
                            return Err(forbidden(key, "must be public, shared or restricted"));
                        }
                        need = Some(Needs::of(Role::Owner, "change visibility"));
                    }
                    Some(_) => {
                        if !matches!(
                            &op.action,
                            OpType::Put(ScalarValue::Str(_)) | OpType::Delete
                        ) {
                            return Err(forbidden(key, "must be a string"));
                        }
                    }
                    None => return Err(forbidden(key, "is fixed by the genesis change")),
                }
            }
            ObjectId::Id(opid)
                if members_id
                    .as_ref()
                    .is_some_and(|(c, a)| *c == opid.0 && *a == opid.1) =>
            {
                let key = match &op.key {
                    Key::Map(k) => k.as_str(),
                    Key::Seq(_) => return Err(forbidden("members", "is not a list")),
                };
                if key.parse::<AuthorId>().is_err() {
                    return Err(forbidden(key, "is not an author id"));
                }
                let ok = match &op.action {
                    OpType::Delete => true,
                    OpType::Put(ScalarValue::Str(v)) => v.parse::<Role>().is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(forbidden(key, "must be owner, editor or viewer"));
                }
                need = Some(Needs::of(Role::Owner, "change members"));
            }
            ObjectId::Id(opid)
                if profiles_id
                    .as_ref()
                    .is_some_and(|(c, a)| *c == opid.0 && *a == opid.1) =>
            {
                let author = it.author.to_string();
                let own = matches!(&op.key, Key::Map(k) if k.as_str() == author
                    || k.strip_suffix(crate::project::ATTESTATION_SUFFIX) == Some(author.as_str()));
                if !own {
                    return Err(forbidden(
                        "profiles",
                        "may only hold the change author's own profile and attestation",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(need)
}

/// Applies a genesis change to a fresh document and checks it starts a project properly.
pub(crate) fn apply_genesis(it: &Item) -> Result<Automerge, IngestError> {
    let bad = |reason| IngestError::BadGenesis {
        hash: it.hash,
        reason,
    };
    if it.change.seq() != 1 {
        return Err(bad("its sequence number is not 1"));
    }
    let mut doc = new_doc();
    guarded("the genesis change", || {
        doc.apply_changes([(*it.change).clone()])
    })?
    .map_err(|_| bad("it does not apply"))?;
    let schema = doc.get(automerge::ROOT, K_SCHEMA).ok().flatten();
    let schema_ok = matches!(&schema, Some((automerge::Value::Scalar(s), _)) if s.as_ref() == &ScalarValue::Str(SCHEMA.into()));
    if !schema_ok {
        return Err(bad("it lacks the project schema marker"));
    }
    let roots = Roots::read(&doc).ok_or(bad("it lacks the project's containers"))?;
    let members: Vec<(String, Option<Role>)> = doc
        .map_range(&roots.members, ..)
        .map(|m| {
            let role = match &m.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => s.parse().ok(),
                _ => None,
            };
            (m.key.to_string(), role)
        })
        .collect();
    if members != [(it.author.to_string(), Some(Role::Owner))] {
        return Err(bad("its only member must be its author, as owner"));
    }
    Ok(doc)
}
