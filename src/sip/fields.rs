//! Read accessors over `rsip` messages for the transaction layer and the call controller
//! (RFC 3261 §8.1.1, §17.1.3, §17.2.3, §19.3, §20).
//!
//! They read the header text directly (see `uri`) where `rsip`'s typed parsers are too
//! strict (IPv6 `Via`, `tel:` URIs), and return `None` rather than an error when a value is
//! absent or unreadable: a message that reached these functions already passed `parse`.

use rsip::Header;
use rsip::message::HasHeaders;
use rsip::prelude::UntypedHeader;

use super::build::header_parts;
use super::uri;

fn first<'m>(msg: &'m impl HasHeaders, name: &str) -> Option<&'m str> {
    msg.headers().iter().find_map(|h| {
        let (n, v) = header_parts(h);
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The value of the first header called `name` (case-insensitive, canonical or not), for
/// headers without an accessor such as `P-Asserted-Identity` or `Retry-After`.
pub fn header_value<'m>(msg: &'m impl HasHeaders, name: &str) -> Option<&'m str> {
    first(msg, name)
}

/// The Call-ID.
pub fn call_id(msg: &impl HasHeaders) -> Option<&str> {
    first(msg, "Call-ID")
}

/// CSeq number and method; `None` for an extension method `rsip` cannot represent.
pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, rsip::Method)> {
    let value = first(msg, "CSeq")?;
    let (num, method) = value.split_once([' ', '\t'])?;
    let num = num.parse().ok()?;
    let method = method.trim().parse().ok()?;
    Some((num, method))
}

/// The top Via value, after `parse` split comma lists into one header each.
pub fn top_via(msg: &impl HasHeaders) -> Option<&str> {
    msg.headers().iter().find_map(|h| match h {
        Header::Via(via) => Some(via.value()),
        _ => None,
    })
}

/// The `branch` of the top Via (the transaction key, §17.2.3); `None` for RFC 2543 peers.
pub fn top_via_branch(msg: &impl HasHeaders) -> Option<&str> {
    uri::header_param(top_via(msg)?, "branch").filter(|b| !b.is_empty())
}

/// The From tag.
pub fn from_tag(msg: &impl HasHeaders) -> Option<&str> {
    uri::header_param(first(msg, "From")?, "tag").filter(|t| !t.is_empty())
}

/// The To tag; `None` outside a dialog.
pub fn to_tag(msg: &impl HasHeaders) -> Option<&str> {
    uri::header_param(first(msg, "To")?, "tag").filter(|t| !t.is_empty())
}

/// The caller's number: the user part of the From URI, percent-decoded, without user
/// parameters (`sip:+15551234;npdi@trunk` → `+15551234`).
pub fn from_user(msg: &impl HasHeaders) -> Option<String> {
    header_user(msg, "From")
}

/// The percent-decoded user part of the URI in the first `name` header (a name-addr or
/// addr-spec, e.g. `P-Asserted-Identity`, RFC 3325).
pub fn header_user(msg: &impl HasHeaders, name: &str) -> Option<String> {
    let user = uri::user_of(uri::addr_spec(first(msg, name)?)?)?;
    Some(uri::percent_decode(user))
}

/// The dialled number: the user part of the Request-URI, percent-decoded, without user
/// parameters.
pub fn request_uri_user(req: &rsip::Request) -> Option<String> {
    let user = req.uri.auth.as_ref()?.user.as_str();
    let user = user.split([';', ':']).next().filter(|u| !u.is_empty())?;
    Some(uri::percent_decode(user))
}

/// The URI of the first Contact (`None` for `*` or an unreadable one).
pub fn contact_uri(msg: &impl HasHeaders) -> Option<rsip::Uri> {
    uri::parse(uri::addr_spec(first(msg, "Contact")?)?)
}

/// The text of the first Contact's URI as received, for logging or re-use in a Route set.
pub fn contact_uri_text(msg: &impl HasHeaders) -> Option<&str> {
    uri::addr_spec(first(msg, "Contact")?)
}
