//! Whether a job's file can be downloaded now. A job that ended with a file
//! may still answer 410: its file was made while its role could see charges
//! and the enrollment now hides them from that role, or the file itself is
//! gone (removed by retention or by hand). Lists use this to show the real
//! state, and downloads to refuse, so the two never disagree.

use crate::files::ReportFiles;
use crate::runner::Manifest;
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::jobs::Job;

/// A job's file, as a download would find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// The job has not ended, or ended without a file (failed, cancelled, ...).
    NoFile,
    /// The file downloads.
    Available,
    /// The file shows charges the enrollment now hides from the job's role.
    Withheld,
    /// The job's file is no longer in the report store.
    Gone,
}

impl FileState {
    /// The state's name in the API (`fileState`).
    pub fn name(self) -> &'static str {
        match self {
            FileState::NoFile => "none",
            FileState::Available => "available",
            FileState::Withheld => "withheld",
            FileState::Gone => "expired",
        }
    }

    /// Why a download answers 410, for the error body and the lists.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            FileState::Withheld => Some(
                "this report shows charges, which the enrollment no longer lets this role see; request it again",
            ),
            FileState::Gone => {
                Some("the report's file is no longer kept (its retention ended, or it was removed); request it again")
            }
            FileState::NoFile | FileState::Available => None,
        }
    }
}

/// Whether `job`'s file shows charges its role may no longer see.
pub fn withheld(job: &Job, visibility: ChargeVisibility) -> bool {
    let costs_shown = job
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .is_some_and(|v| v["filters"]["costsShown"] == serde_json::Value::Bool(true));
    costs_shown && !job.spec.scope.sees_costs(visibility)
}

/// The state of `job`'s file under the enrollment's current `visibility`;
/// looks the file up in `files` (an error reading it counts as present: the
/// download then says what went wrong).
pub fn file_state(job: &Job, visibility: ChargeVisibility, files: &dyn ReportFiles) -> FileState {
    if !job.status.has_file() {
        return FileState::NoFile;
    }
    if withheld(job, visibility) {
        return FileState::Withheld;
    }
    let Some(m) = job.manifest.as_deref().and_then(Manifest::parse) else {
        return FileState::Gone;
    };
    match files.open(&m.file) {
        Ok(None) => FileState::Gone,
        Ok(Some(_)) | Err(_) => FileState::Available,
    }
}
