//! The entry point an agent embeds: a registry for one workspace, and the one path every run
//! takes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::registry::{Locations, LookupError, Registry};
use crate::result::{SkillResult, Status};
use crate::security::{SecurityContext, TrustLevel};
use crate::tool::SkillTool;

/// Why a runtime could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The workspace does not exist or cannot be resolved.
    #[error("workspace {path}: {source}")]
    Workspace {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
}

/// Choices a person makes for one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run at this level instead of the skill's default.
    pub trust: Option<TrustLevel>,
    /// Run even where the host lacks Landlock or seccomp (see
    /// [`SecurityContext::allow_weaker_isolation`]).
    pub allow_weaker_isolation: bool,
}

/// Skills for one workspace, and the single execution path used by the CLI, the MCP server
/// and [`SkillTool`].
#[derive(Debug)]
pub struct Runtime {
    registry: Registry,
    workspace: PathBuf,
}

impl Runtime {
    /// Opens `workspace` with the standard skill locations, reading `HOME`, `SKILLBOX_HOME`
    /// and `XDG_CONFIG_HOME` from this process's environment.
    pub fn open(workspace: &Path) -> Result<Self, OpenError> {
        let workspace = canonical(workspace)?;
        let locations = Locations::standard(&workspace, |k| std::env::var_os(k));
        Ok(Self { registry: Registry::load(&locations), workspace })
    }

    /// A runtime over an already loaded registry.
    pub fn with_registry(registry: Registry, workspace: &Path) -> Result<Self, OpenError> {
        Ok(Self { registry, workspace: canonical(workspace)? })
    }

    /// The skills.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The workspace (canonical: symlinks resolved).
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The context a skill named `name` runs with: its source's default level, or `trust`.
    pub fn context_for(
        &self,
        name: &str,
        trust: Option<TrustLevel>,
    ) -> Result<SecurityContext, LookupError> {
        let skill = self.registry.get(name)?;
        let level = trust.unwrap_or_else(|| skill.source.default_trust());
        Ok(SecurityContext::for_trust_level(level, &self.workspace))
    }

    /// Runs the skill `name` (or alias) with `params`, at its default trust level or at
    /// `trust`.
    pub async fn run(&self, name: &str, params: &Value, trust: Option<TrustLevel>) -> SkillResult {
        self.run_with(name, params, &RunOptions { trust, ..RunOptions::default() }).await
    }

    /// Runs the skill `name` (or alias) with `params` and per-run `options`. Every run in
    /// skillbox goes through here.
    pub async fn run_with(&self, name: &str, params: &Value, options: &RunOptions) -> SkillResult {
        let skill = match self.registry.get(name) {
            Ok(s) => s,
            Err(e) => {
                let shown = match &e {
                    LookupError::NotFound(_) => name.to_string(),
                    LookupError::InvalidName { .. } => String::new(),
                };
                return SkillResult::refused(Status::Invalid, &shown, e.to_string());
            }
        };
        let level = options.trust.unwrap_or_else(|| skill.source.default_trust());
        let mut ctx = SecurityContext::for_trust_level(level, &self.workspace);
        ctx.allow_weaker_isolation = options.allow_weaker_isolation;
        skill.execute_with_security(params, &ctx).await
    }

    /// Every skill as a tool, at its default trust level.
    pub fn tools(self: &Arc<Self>) -> Vec<SkillTool> {
        self.registry
            .skills()
            .filter_map(|s| SkillTool::new(self.clone(), &s.def.name, None))
            .collect()
    }
}

fn canonical(p: &Path) -> Result<PathBuf, OpenError> {
    let c = p
        .canonicalize()
        .map_err(|source| OpenError::Workspace { path: p.to_path_buf(), source })?;
    if !c.is_dir() {
        return Err(OpenError::Workspace {
            path: p.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
        });
    }
    Ok(c)
}
