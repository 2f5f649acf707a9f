//! hyper answers a request it cannot parse (a bad Content-Length, a
//! malformed request line, headers too large) itself, before any handler
//! runs, with an empty 4xx. This connection wrapper rewrites exactly that
//! answer into the JSON error every other 4xx carries, so a client always
//! gets a reason. hyper's canned answer is recognised by its head: a 4xx
//! status with `connection: close` and `content-length: 0`, which no
//! handler's answer has (they all carry a JSON body).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct JsonCannedErrors<T> {
    inner: T,
    /// A rewritten answer being written, and how many bytes of hyper's the
    /// write reports once it is out.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonCannedErrors<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The JSON version of hyper's canned error head, or `None` for any other
/// bytes.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    const CANNED: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";
    if !(head.starts_with(b"HTTP/1.1 4") || head.starts_with(b"HTTP/1.0 4"))
        || !head.ends_with(b"\r\n\r\n")
    {
        return None;
    }
    let at = head.windows(CANNED.len()).position(|w| w == CANNED)?;
    let status_line = std::str::from_utf8(&head[..head.iter().position(|&b| b == b'\r')?]).ok()?;
    let mut parts = status_line.splitn(3, ' ');
    let (_, code, reason) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let code: u16 = code.parse().ok()?;
    let body = serde_json::json!({
        "error": format!(
            "{code} {reason}: not a valid HTTP request (request line, headers or Content-Length); nothing of it was read"
        ),
        "code": code,
    })
    .to_string();
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(&head[..at]);
    out.extend_from_slice(
        b"\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ",
    );
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&head[at + CANNED.len()..]);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonCannedErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> JsonCannedErrors<T> {
    /// Writes the pending rewrite out; then reports hyper's bytes written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, _)) = self.pending.as_mut()
            && *written < bytes.len()
        {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let reported = self.pending.take().map_or(0, |(_, _, reported)| reported);
        Poll::Ready(Ok(reported))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonCannedErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(json) => this.pending = Some((json, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.poll_pending(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        // The canned answer is a head alone, in one slice.
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && (this.pending.is_some() || rewrite(only).is_some())
        {
            return Pin::new(this).poll_write(cx, only);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_canned_error_is_rewritten() {
        let canned = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 22:35:25 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(canned).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: "), "{head}");
        assert!(
            head.ends_with("date: Sat, 05 Dec 2026 22:35:25 GMT"),
            "{head}"
        );
        let length: usize = head
            .split("content-length: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], 400);
        for other in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n{}",
        ] {
            assert!(rewrite(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
