//! Addresses: which spellings a scanner may claim, and how the event model spells them.

/// 4 for a plain dotted quad (address.IPV4), 6 for the kernel's fully
/// expanded IPv6 (eight groups of four lower-case hex digits, not
/// IPv4-mapped); None for any other spelling, which the reference handles.
pub fn address_kind(text: &[u8]) -> Option<u8> {
    if text.len() == 39 {
        let groups_ok = text.chunks(5).all(|g| {
            g[..4].iter().all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && (g.len() == 4 || g[4] == b':')
        });
        if groups_ok && !text.starts_with(b"0000:0000:0000:0000:0000:ffff:") {
            return Some(6);
        }
        return None;
    }
    // A dotted quad: four octets of 1-3 digits, no leading zero, <= 255.
    let n = text.len();
    let mut i = 0;
    for octet in 0..4 {
        let start = i;
        let mut value = 0u32;
        while i < n && i - start < 3 {
            let digit = text[i].wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value * 10 + u32::from(digit);
            i += 1;
        }
        let len = i - start;
        if len == 0 || value > 255 || (len > 1 && text[start] == b'0') {
            return None;
        }
        if octet < 3 {
            if i >= n || text[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    if i == n {
        Some(4)
    } else {
        None
    }
}

/// The kernel's expanded IPv6 the way `ipaddress` compresses it (see `write_ipv6`).
pub fn compress_ipv6(text: &[u8], out: &mut Vec<u8>) {
    let mut groups = [0u16; 8];
    for (i, g) in text.chunks(5).enumerate() {
        groups[i] = g[..4].iter().fold(0u16, |n, &b| n * 16 + (b as char).to_digit(16).unwrap_or(0) as u16);
    }
    write_ipv6(groups, out);
}

/// Eight groups the way `ipaddress` compresses them (RFC 5952): leading
/// zeros dropped, the longest run of two or more zero groups (the first of
/// equals) written "::".
pub fn write_ipv6(groups: [u16; 8], out: &mut Vec<u8>) {
    let (mut best_at, mut best_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len && i - start >= 2 {
                best_at = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    out.clear();
    let hex = b"0123456789abcdef";
    let mut i = 0;
    while i < 8 {
        if i == best_at {
            out.extend_from_slice(b"::");
            i += best_len;
            continue;
        }
        if !(out.is_empty() || out.ends_with(b":")) {
            out.push(b':');
        }
        let g = groups[i];
        let mut started = false;
        for shift in [12u16, 8, 4, 0] {
            let digit = (g >> shift) & 0xf;
            if digit != 0 || started || shift == 0 {
                out.push(hex[digit as usize]);
                started = true;
            }
        }
        i += 1;
    }
}

/// Any IPv6 spelling `ipaddress` reads without doubt, as its eight groups:
/// one to four hex digits a group (either case), at most one "::" standing
/// for at least one zero group. None for everything else (embedded IPv4,
/// zone ids, IPv4-mapped addresses, whose spelling differs across Python
/// versions): the reference path decides those.
pub fn ipv6_groups(text: &[u8]) -> Option<[u16; 8]> {
    if text.len() < 2 || text.len() > 45 {
        return None;
    }
    let mut groups = [0u16; 8];
    let (mut count, mut gap) = (0usize, None);
    let mut i = 0;
    if text.starts_with(b"::") {
        gap = Some(0);
        i = 2;
        if i == text.len() {
            return Some(groups);
        }
    }
    loop {
        let start = i;
        let mut value = 0u32;
        while i < text.len() && text[i] != b':' {
            value = value * 16 + (text[i] as char).to_digit(16)?;
            i += 1;
            if i - start > 4 {
                return None;
            }
        }
        if i == start || count == 8 {
            return None;
        }
        groups[count] = value as u16;
        count += 1;
        if i == text.len() {
            break;
        }
        i += 1; // past ':'
        if i < text.len() && text[i] == b':' {
            if gap.is_some() {
                return None;
            }
            gap = Some(count);
            i += 1;
            if i == text.len() {
                break;
            }
        } else if i == text.len() {
            return None; // a single trailing colon
        }
    }
    match gap {
        None if count == 8 => {}
        Some(at) if count <= 7 => {
            let tail = count - at;
            let mut full = [0u16; 8];
            full[..at].copy_from_slice(&groups[..at]);
            full[8 - tail..].copy_from_slice(&groups[at..count]);
            groups = full;
        }
        _ => return None,
    }
    if groups[..5].iter().all(|&g| g == 0) && groups[5] == 0xffff {
        return None;
    }
    Some(groups)
}

/// 4 for a plain dotted quad, 6 for an address `ipv6_groups` reads; None otherwise.
pub fn any_kind(text: &[u8]) -> Option<u8> {
    if text.contains(&b':') {
        ipv6_groups(text).map(|_| 6)
    } else {
        address_kind(text).filter(|&k| k == 4)
    }
}

/// An address `any_kind` accepted, as the event model spells it.
pub fn spell_any(text: &[u8], out: &mut Vec<u8>) {
    match ipv6_groups(text) {
        Some(groups) if text.contains(&b':') => write_ipv6(groups, out),
        _ => {
            out.clear();
            out.extend_from_slice(text);
        }
    }
}

/// An address as the event model spells it (see `compress_ipv6`).
pub fn spell_address(text: &[u8], out: &mut Vec<u8>) {
    if text.len() == 39 {
        compress_ipv6(text, out);
    } else {
        out.clear();
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled(text: &str) -> Option<String> {
        any_kind(text.as_bytes())?;
        let mut out = Vec::new();
        spell_any(text.as_bytes(), &mut out);
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn ipv6_is_spelled_as_ipaddress_compresses_it() {
        for (text, want) in [
            ("2001:DB8::7", "2001:db8::7"),
            ("2001:0db8:0000:0000:0000:0000:0000:0007", "2001:db8::7"),
            ("::", "::"),
            ("1::", "1::"),
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("::192:0:2:1", "::192:0:2:1"),
        ] {
            assert_eq!(spelled(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn spellings_left_to_the_reference_are_not_read() {
        for text in [
            "::ffff:192.0.2.1", "0:0:0:0:0:ffff:c000:201", "fe80::1%eth0", "1:::2", "1::2::3", "12345::1",
            "1:2:3:4:5:6:7:8:9", ":1::2", "1::2:", "1:2:3:4:5:6:7:8::", "g::1", "", ":", "010.1.2.3", "256.1.1.1",
        ] {
            assert_eq!(spelled(text), None, "{text}");
        }
    }
}
