//! Project automation, run as `cargo xtask <task>`.
//! See <https://github.com/matklad/cargo-xtask/>.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("no tasks yet")
}
