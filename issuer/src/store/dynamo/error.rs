//! SDK failures mapped to [`StoreError`]: the operation and the error code
//! only, never item contents.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

pub(super) const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
pub(super) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

pub(super) fn build_err(err: BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request could not be built: {err}"))
}

/// Maps an SDK failure to [`StoreError::Unavailable`]: throttling, timeouts,
/// connection failures, 5xx and anything else DynamoDB refused. The message
/// names the operation and the error code only, never request contents.
pub(super) fn sdk_err<E>(op: &'static str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let what = match err {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "connection failed".to_owned(),
        SdkError::DispatchFailure(_) => "request could not be sent".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        SdkError::ServiceError(se) => {
            format!("{} (HTTP {})", se.err().code().unwrap_or("unknown error"), se.raw().status().as_u16())
        }
        _ => "unknown failure".to_owned(),
    };
    if matches!(err, SdkError::ServiceError(_)) {
        tracing::warn!(operation = op, error = %what, "DynamoDB request failed");
    } else {
        // Transport errors carry no request contents: log the whole chain.
        tracing::warn!(operation = op, error = %what, detail = %DisplayErrorContext(err), "DynamoDB request failed");
    }
    StoreError::Unavailable(format!("DynamoDB {op}: {what}"))
}
