//! `orrery project reference`: a dataset found in the federation referenced by a project,
//! through the running node (which finds its holders by federated search), so that the
//! project's cells run where the dataset is.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::Ctx;
use super::dataset::fetch::{holders, names};
use super::ephemeral::{Ephemeral, once_known};
use super::project::load;
use crate::store::Scope;

/// How long the federated search for the product's holders may take.
const SEARCH: Duration = Duration::from_secs(10);

/// References `product` (held by `from`, if given) in `project` as `user`.
pub(super) fn reference(
    ctx: &Ctx,
    project: &str,
    product: &str,
    from: Option<&str>,
    user: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let p = load(ctx, project)?;
    let collection = product
        .split_once('/')
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty())
        .context("a product is named `collection/path`, as a federated search shows it")?;
    let found = holders(ctx, collection, product, SEARCH)?;
    let held: Vec<_> = found
        .iter()
        .filter(|h| from.is_none_or(|f| names(h, f)))
        .collect();
    let Some(hit) = held.first() else {
        match from {
            Some(f) if !found.is_empty() => {
                bail!("{f} does not hold {product} (its holders answered; leave out --from)")
            }
            _ => bail!(
                "no member that answered holds {product}: check the name with `orrery dataset search`"
            ),
        }
    };
    let node = hit
        .node
        .clone()
        .context("the holder's answer named no node")?;
    let who = hit
        .node_name
        .clone()
        .unwrap_or_else(|| node[..8].to_owned());
    let token = Ephemeral::make(&ctx.home, user, &[Scope::Read, Scope::Write])?;
    let path = format!("/api/v1/projects/{}/datasets", p.id());
    let body = json!({ "node": node, "product": product, "checksum": hit.blake3 });
    once_known(|| {
        crate::web_client::api(&ctx.home, "POST", &path, &token.secret, Some(&body), SEARCH)
    })
    .with_context(|| format!("POST {path}"))?;
    writeln!(
        out,
        "{product} at {who} (blake3 {}…) is referenced by {}; its cells run at {who} from now on",
        &hit.blake3[..hit.blake3.len().min(16)],
        p.title()
    )?;
    if held.len() > 1 {
        writeln!(
            out,
            "{} other member(s) hold it too; --from chooses which one is referenced",
            held.len() - 1
        )?;
    }
    Ok(())
}
