//! floodgate's HTTP/1.1 framing (RFC 9112), as pure code over bytes: request and response heads, how a
//! message's body is delimited (`Content-Length`, `Transfer-Encoding`), the chunked decoder and encoder,
//! trailers, and the connection-level header rules that framing depends on.
//!
//! The gateway's server and its upstream client both use this crate, so a rule holds the same on both
//! sides of the proxy, and a message always leaves framed exactly as it was read. It opens no sockets and
//! knows nothing of routing: the proxy crate lends it a connection's buffer through [`BodySource`].
//!
//! Each parser here takes untrusted bytes; each has unit tests and a fuzz target (`fuzz/`), and
//! [`fuzzing`] holds the properties the fuzz targets check, so they also run as ordinary tests.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod chunk;
mod decoder;
mod encode;
mod fields;
pub mod fuzzing;
mod host;
mod length;
mod request;
mod response;
mod tokens;
mod trailers;
mod twins;

pub use chunk::{parse_chunk_line, parse_field_line, ChunkLineError};
pub use decoder::{BodySource, DecodeError, Decoder, Framing};
pub use encode::{encode_chunk_size, encode_field, encode_fields, encode_last_chunk};
pub use fields::{header_map, raw_fields_of, FieldSpan, RawFields};
pub use host::{is_valid_authority, same_authority};
pub use length::{content_length, content_length_of, parse_decimal, transfer_coding, CodingError};
pub use request::{head_complete, parse_request, RequestError, RequestHead, MAX_REQUEST_HEADERS};
pub use response::{
    encode_request, parse_response, ResponseError, ResponseHead, MAX_RESPONSE_HEAD,
    MAX_RESPONSE_HEADERS,
};
pub use tokens::{
    connection_has, is_hop_by_hop_name, is_kept_token, list_has, named_by_connection, HopByHop,
};
pub use trailers::is_forbidden_trailer;
pub use twins::{can_have_twins, has_twin, is_twin, remove_twins, remove_with_twins, twins};
