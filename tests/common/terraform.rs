//! Rendering the provider-free modules of `terraform/modules` offline, with the Terraform (or
//! OpenTofu) that `scripts/test-terraform env` names.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The first binary of the colon-separated list in `var`, or `None` (with the reason printed)
/// when it is not set, unless `OUTPOST_TEST_REQUIRE_SERVERS=1`, which makes that a failure.
pub fn binary(var: &str) -> Option<PathBuf> {
    super::server_url(var).and_then(|v| v.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
}

/// Runs `command`, which must succeed; its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Renders `module` (a folder of `terraform/modules`) with `inputs` (HCL assignments) in a root
/// of its own, offline, and returns its output `output` as `terraform output -raw` prints it.
pub fn render(terraform: &Path, module: &str, inputs: &str, output: &str) -> String {
    let dir = tempfile::tempdir().expect("a folder for the root");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("terraform/modules")
        .join(module);
    std::fs::write(
        dir.path().join("main.tf"),
        format!(
            "module \"m\" {{\n  source = \"{}\"\n{inputs}\n}}\n\
             output \"out\" {{\n  value     = module.m.{output}\n  sensitive = true\n}}\n",
            source.display()
        ),
    )
    .expect("the root's main.tf");
    let cli_config = dir.path().join("terraformrc");
    std::fs::write(&cli_config, "").expect("an empty CLI configuration");
    let tf = |args: &[&str]| {
        run(Command::new(terraform)
            .args(args)
            .current_dir(dir.path())
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1"))
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    tf(&["output", "-raw", "out"])
}
