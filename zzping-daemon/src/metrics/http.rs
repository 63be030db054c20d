//! The HTTP side: a request head parsed with `httparse` (no allocation), a response
//! written into a reused buffer.

use std::io::Write as _;

use super::MAX_REQUEST;

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Not complete yet: read more.
    Incomplete,
    /// `GET /metrics` (`head`: `HEAD /metrics`).
    Metrics {
        /// HEAD: headers only.
        head: bool,
    },
    /// Another path: 404.
    NotFound,
    /// Another method on /metrics: 405.
    MethodNotAllowed,
    /// Malformed: 400.
    BadRequest,
    /// The head does not fit in [`MAX_REQUEST`] bytes: 431.
    TooLarge,
}

/// Most header lines a request may carry (more: 431). The parser's header table lives on
/// the stack: parsing allocates nothing.
const MAX_HEADERS: usize = 64;

/// Parses an HTTP/1.x request head from the bytes received so far (only the first
/// [`MAX_REQUEST`] are looked at) with `httparse`. Never panics; linear in the input.
pub fn parse_request(buf: &[u8]) -> Request {
    let buf = &buf[..buf.len().min(MAX_REQUEST)];
    let full = buf.len() >= MAX_REQUEST;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if full => return Request::TooLarge,
        Ok(httparse::Status::Partial) => return Request::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Request::TooLarge,
        Err(_) => return Request::BadRequest,
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Request::BadRequest;
    };
    // Origin form only (`/path?query`): no absolute URIs, no `*`.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Request::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Request::NotFound;
    }
    match method {
        "GET" => Request::Metrics { head: false },
        "HEAD" => Request::Metrics { head: true },
        _ => Request::MethodNotAllowed,
    }
}

/// Writes a complete response (status line, headers, body) into `out` (cleared first).
pub fn write_response(out: &mut Vec<u8>, req: Request, body: &str) {
    out.clear();
    let (status, ctype, body, allow) = match req {
        Request::Metrics { .. } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            body,
            false,
        ),
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n",
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
            true,
        ),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n",
            false,
        ),
        Request::BadRequest | Request::Incomplete => {
            ("400 Bad Request", "text/plain", "bad request\n", false)
        }
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if allow {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !matches!(req, Request::Metrics { head: true }) {
        out.extend_from_slice(body.as_bytes());
    }
    // Spare room, as for the body (see `keep_slack`).
    let want = out.len() / 8 + 1024;
    if out.capacity() - out.len() < want {
        out.reserve(want * 2);
    }
}
