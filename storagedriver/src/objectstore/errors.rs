//! The one mapping from `object_store` errors to the contract's [`Error`].

use crate::error::{Error, Retry};

/// Maps `err`, from `operation` on `path`, to the contract's error for `driver`.
///
/// - A missing object is [`Error::PathNotFound`] naming `path`; a missing bucket or container
///   is a [`Error::Backend`] that says so (it is not a missing path), and so is a refused
///   signature or permission.
/// - Authentication and permission failures, and other 4xx answers, are
///   [`Retry::Useless`]; timeouts, dropped connections and 5xx answers are
///   [`Retry::MayHelp`] (object_store has already retried them).
pub(crate) fn map(driver: &str, operation: &str, path: &str, err: object_store::Error) -> Error {
    let text = err.to_string();
    let explained = |retry: Retry, hint: &str| {
        Error::backend(
            driver,
            operation,
            Some(path),
            retry,
            format!("{hint}: {text}"),
        )
    };
    if names_missing_container(&text) {
        return explained(Retry::Useless, "the bucket or container does not exist");
    }
    let retry = match &err {
        object_store::Error::NotFound { .. } => return Error::path_not_found(driver, path),
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            return explained(
                Retry::Useless,
                "access denied (check the credentials and their permissions on the bucket or container)",
            );
        }
        _ if unreachable(&text) => return explained(Retry::MayHelp, "cannot reach the endpoint"),
        object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::Precondition { .. }
        | object_store::Error::AlreadyExists { .. } => Retry::Useless,
        _ if client_error(&text) => Retry::Useless,
        _ => Retry::MayHelp,
    };
    Error::backend(driver, operation, Some(path), retry, err)
}

/// True when no answer came: the connection failed or was refused.
fn unreachable(text: &str) -> bool {
    text.contains("error sending request") || text.contains("Connection refused")
}

/// True when a 404 is about the bucket or container, not the object.
fn names_missing_container(text: &str) -> bool {
    ["NoSuchBucket", "ContainerNotFound", "ContainerBeingDeleted"]
        .iter()
        .any(|code| text.contains(code))
}

/// True when the server answered with a 4xx status other than a timeout or throttling.
fn client_error(text: &str) -> bool {
    let Some(at) = text.find("status code: 4") else {
        return false;
    };
    let code = &text[at + "status code: ".len()..];
    !(code.starts_with("408") || code.starts_with("429"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn a_missing_object_is_path_not_found_and_a_missing_bucket_is_not() {
        let missing = object_store::Error::NotFound {
            path: "k".into(),
            source: "Server returned non-2xx status code: 404 Not Found: NoSuchKey".into(),
        };
        assert!(map("s3", "get", "/a", missing).is_not_found());
        let bucket = object_store::Error::NotFound {
            path: "k".into(),
            source: "Server returned non-2xx status code: 404 Not Found: <Code>NoSuchBucket</Code>"
                .into(),
        };
        let err = map("s3", "get", "/a", bucket);
        assert!(!err.is_not_found());
        assert!(
            err.to_string()
                .contains("bucket or container does not exist"),
            "{err}"
        );
    }

    #[test]
    fn client_errors_are_not_retried() {
        let denied = generic("Server returned non-2xx status code: 403 Forbidden: AccessDenied");
        assert!(!map("s3", "put", "/a", denied).may_retry());
        let slow =
            generic("Server returned non-2xx status code: 503 Service Unavailable: SlowDown");
        assert!(map("s3", "put", "/a", slow).may_retry());
        let throttled = generic("Server returned non-2xx status code: 429 Too Many Requests");
        assert!(map("s3", "put", "/a", throttled).may_retry());
    }
}
