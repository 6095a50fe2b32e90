//! The states a document and an upload go through, as the gateway stores and shows them. Parsed
//! strictly: a value that is none of these is an error, never a default.

use serde::{Deserialize, Serialize};

/// A document's state: issued here, then received by the SII with an upload, then the SII's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocState {
    Issued,
    Sent,
    Accepted,
    /// Accepted with reparos (the SII's objections that do not reject it).
    AcceptedWithObjections,
    Rejected,
}

impl DocState {
    pub const ALL: [DocState; 5] =
        [DocState::Issued, DocState::Sent, DocState::Accepted, DocState::AcceptedWithObjections, DocState::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            DocState::Issued => "issued",
            DocState::Sent => "sent",
            DocState::Accepted => "accepted",
            DocState::AcceptedWithObjections => "accepted_with_objections",
            DocState::Rejected => "rejected",
        }
    }
}

/// An upload's state: claimed documents (`new`), to send or resend (`pending`), received by the SII
/// with a TrackID (`sent`), judged (`final`), or refused whole (`rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    New,
    Pending,
    Sent,
    Final,
    Rejected,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 5] =
        [UploadStatus::New, UploadStatus::Pending, UploadStatus::Sent, UploadStatus::Final, UploadStatus::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::New => "new",
            UploadStatus::Pending => "pending",
            UploadStatus::Sent => "sent",
            UploadStatus::Final => "final",
            UploadStatus::Rejected => "rejected",
        }
    }
}

/// A batch item's state: waiting for issuance, issued with its folio, failed for good (its input
/// or a rule), or dead (retries exhausted; in the dead letters until replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    Issued,
    Failed,
    Dead,
}

impl ItemState {
    pub const ALL: [ItemState; 4] = [ItemState::Pending, ItemState::Issued, ItemState::Failed, ItemState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Issued => "issued",
            ItemState::Failed => "failed",
            ItemState::Dead => "dead",
        }
    }
}

/// A batch's state: its items being written (`receiving`), `open` while any item is pending, then
/// `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Receiving,
    Open,
    Done,
}

impl BatchState {
    pub const ALL: [BatchState; 3] = [BatchState::Receiving, BatchState::Open, BatchState::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Receiving => "receiving",
            BatchState::Open => "open",
            BatchState::Done => "done",
        }
    }
}

macro_rules! from_str {
    ($t:ty, $what:literal) => {
        impl std::str::FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> Result<$t, String> {
                <$t>::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
                    let known: Vec<&str> = <$t>::ALL.iter().map(|v| v.as_str()).collect();
                    format!(concat!("unknown ", $what, " {:?} (one of {})"), s, known.join(", "))
                })
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

from_str!(DocState, "document state");
from_str!(UploadStatus, "upload state");
from_str!(ItemState, "batch item state");
from_str!(BatchState, "batch state");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_ones_are_errors() {
        for s in DocState::ALL {
            assert_eq!(s.as_str().parse::<DocState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in UploadStatus::ALL {
            assert_eq!(s.as_str().parse::<UploadStatus>(), Ok(s));
        }
        assert!("accepted ".parse::<DocState>().is_err());
        assert!("done".parse::<UploadStatus>().unwrap_err().contains("unknown upload state"));
        for s in ItemState::ALL {
            assert_eq!(s.as_str().parse::<ItemState>(), Ok(s));
        }
        for s in BatchState::ALL {
            assert_eq!(s.as_str().parse::<BatchState>(), Ok(s));
        }
        assert!("issued".parse::<BatchState>().is_err());
    }
}
