//! Reading DingTalk's answers with a size cap: a hostile or broken endpoint
//! cannot make readbot buffer an unbounded body.

/// Largest DingTalk answer readbot reads (the biggest documented answers,
/// a page of read state or members, are a few hundred KiB at most). A longer
/// body is refused with [`crate::dingtalk::DingTalkError::TooLarge`] after
/// reading at most this much; a longer `Content-Length` is refused before
/// reading any of it.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Largest answer of Stream mode's open-connection call (an endpoint and a
/// ticket).
pub const MAX_TICKET_BYTES: usize = 64 * 1024;

/// Why [`read_capped`] stopped.
#[derive(Debug)]
pub(crate) enum Capped {
    /// The body is longer than the cap.
    TooLarge,
    /// Reading failed.
    Read(reqwest::Error),
}

/// Reads a body chunk by chunk, stopping as soon as it exceeds `cap` bytes
/// (a declared longer `Content-Length` is refused before reading).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, Capped> {
    let declared = resp.content_length().unwrap_or(0);
    if declared > u64::try_from(cap).unwrap_or(u64::MAX) {
        return Err(Capped::TooLarge);
    }
    let initial = usize::try_from(declared).unwrap_or(cap).min(cap);
    let mut body = Vec::with_capacity(initial);
    while let Some(chunk) = resp.chunk().await.map_err(Capped::Read)? {
        if chunk.len() > cap.saturating_sub(body.len()) {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
