//! Signed URLs, fetched with a real HTTP client.

use std::time::Duration;

use bytes::Bytes;
use storagedriver::{Error, Method, StorageDriver, UrlOptions};

use super::{ok, put};
use crate::data::random_bytes;
use crate::http::{HttpResponse, fetch};

/// `url_for` gives URLs that a plain HTTP client can GET (the content) and HEAD (the length)
/// without credentials; drivers without the capability say Unsupported.
pub async fn url_for_get_and_head(d: &dyn StorageDriver) {
    let path = "/url/file";
    let content = random_bytes(15, 32);
    put(d, path, content.clone()).await;
    let get_opts = UrlOptions {
        method: Method::Get,
        expires_in: Duration::from_secs(300),
    };
    let result = d.url_for(path, &get_opts).await;
    if !d.capabilities().url_for {
        match result {
            Err(Error::Unsupported { .. }) => return,
            other => panic!("url_for without the capability: expected Unsupported, got {other:?}"),
        }
    }
    let url = ok(result, "url_for GET");
    let response: HttpResponse = ok(fetch("GET", &url).await, "GET of the signed URL");
    assert_eq!(response.status, 200, "GET {url}: {response:?}");
    assert_eq!(Bytes::from(response.body), content, "GET body");

    let head_opts = UrlOptions {
        method: Method::Head,
        ..get_opts
    };
    let url = ok(d.url_for(path, &head_opts).await, "url_for HEAD");
    let response = ok(fetch("HEAD", &url).await, "HEAD of the signed URL");
    assert_eq!(response.status, 200, "HEAD {url}: {response:?}");
    assert_eq!(response.content_length, Some(32), "HEAD Content-Length");
}
