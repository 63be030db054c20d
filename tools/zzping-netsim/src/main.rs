//! Skeleton: not implemented yet (see the open issues).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
