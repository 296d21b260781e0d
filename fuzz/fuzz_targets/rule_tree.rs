//! Rules built from their grammar rather than from bytes: nesting up to and past the bound,
//! sets of up to 65,280 members, every field with values of its own type. Whatever is built,
//! parsing refuses exactly the rules nested deeper than `MAX_NESTING` (and nothing else, since
//! every value is valid), compiling either succeeds or refuses with a bound, and what compiles
//! agrees with the reference interpreter on packets drawn from the input.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use classifier::compile::CompileError;
use classifier::field::{FIELDS, FieldDef, Ty};
use classifier::parse::MAX_NESTING;
use classifier::{Key, RuleTable};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Node {
    Test {
        field: u8,
        op: u8,
        value: u64,
        prefix: u8,
    },
    /// `len` members, or `len` × 256 when `large` (past the box bound).
    Set {
        field: u8,
        seed: u64,
        len: u8,
        large: bool,
        ranges: bool,
        negated: bool,
    },
    Present {
        field: u8,
    },
    Not(Box<Node>),
    Paren(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// `depth` parentheses (or `not`s) around `inner`: the deep cases in a few bytes.
    Deep {
        depth: u8,
        scale: u8,
        nots: bool,
        inner: Box<Node>,
    },
}

/// Renders `node`, returning the deepest nesting of parentheses and `not`s written.
fn render(node: &Node, out: &mut String, level: usize) -> usize {
    // Past a few hundred levels the structure adds nothing: stop recursing (a leaf).
    if level > 4 * MAX_NESTING {
        out.push_str("tcp");
        return 0;
    }
    match node {
        Node::Test { field, op, value, prefix } => {
            let f = field_of(*field);
            let ops = ["==", "!=", "===", "!==", "<", "<=", ">", ">=", "eq", "ne"];
            let op = ops[usize::from(*op) % ops.len()];
            let ordering = ["<", "<=", ">", ">="].contains(&op);
            out.push_str(&format!("{} {op} {}", f.name, literal(f, *value, (!ordering).then_some(*prefix))));
            0
        }
        Node::Set { field, seed, len, large, ranges, negated } => {
            let len = if *large { usize::from(*len) * 256 } else { usize::from(*len) };
            let f = field_of(*field);
            let mut members = Vec::with_capacity(len);
            let mut x = *seed;
            for i in 0..len.max(1) {
                x = classifier::limit::mix(x ^ i as u64);
                let lo = literal(f, x, None);
                if *ranges && i % 3 == 0 {
                    members.push(format!("{lo}..{}", literal(f, x.wrapping_add(x >> 48), None)));
                } else {
                    members.push(lo);
                }
            }
            let not = if *negated { "not " } else { "" };
            out.push_str(&format!("{} {not}in {{{}}}", f.name, members.join(", ")));
            0
        }
        Node::Present { field } => {
            out.push_str(field_of(*field).name);
            0
        }
        Node::Not(inner) => {
            out.push_str("not ");
            1 + render(inner, out, level + 1)
        }
        Node::Paren(inner) => {
            out.push('(');
            let d = render(inner, out, level + 1);
            out.push(')');
            1 + d
        }
        Node::And(terms) | Node::Or(terms) if terms.is_empty() => {
            out.push_str("ip");
            0
        }
        Node::And(terms) | Node::Or(terms) => {
            let sep = if matches!(node, Node::And(_)) { " and " } else { " or " };
            let mut deepest = 0;
            for (i, t) in terms.iter().take(64).enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                // Operands are parenthesized: `a or b and c` would otherwise mean what the
                // tree does not.
                out.push('(');
                deepest = deepest.max(1 + render(t, out, level + 1));
                out.push(')');
            }
            deepest
        }
        Node::Deep { depth, scale, nots, inner } => {
            // Up to 255 × 4 levels: well past the bound, around it, or under it.
            let n = usize::from(*depth) * (1 + usize::from(*scale % 4));
            let n = n.min(4 * MAX_NESTING);
            let open = if *nots { "!" } else { "(" };
            out.push_str(&open.repeat(n));
            let d = render(inner, out, level + n);
            if !*nots {
                out.push_str(&")".repeat(n));
            }
            n + d
        }
    }
}

fn field_of(i: u8) -> &'static FieldDef {
    &FIELDS[usize::from(i) % FIELDS.len()]
}

/// A value of `f`'s type from `x`; with `prefix`, addresses may be written as networks.
fn literal(f: &FieldDef, x: u64, prefix: Option<u8>) -> String {
    match f.ty {
        Ty::Uint { max } => (x % (u64::from(max) + 1)).to_string(),
        Ty::Bool => (x & 1).to_string(),
        Ty::Ipv4 => {
            let a = std::net::Ipv4Addr::from(x as u32);
            match prefix {
                Some(p) if p & 0x80 != 0 => {
                    let len = u32::from(p) % 33;
                    let net = (x as u32) & u32::MAX.checked_shl(32 - len).unwrap_or(0);
                    format!("{}/{len}", std::net::Ipv4Addr::from(net))
                }
                _ => a.to_string(),
            }
        }
        Ty::Ipv6 => {
            let v = u128::from(x) << 64 | u128::from(classifier::limit::mix(x));
            match prefix {
                Some(p) if p & 0x80 != 0 => format!("{}/{}", std::net::Ipv6Addr::from(v), u32::from(p) % 129),
                _ => std::net::Ipv6Addr::from(v).to_string(),
            }
        }
        Ty::Ether => {
            let b = (x & 0xffff_ffff_ffff).to_be_bytes();
            format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
        }
        // A protocol takes no value: test its presence instead (the caller wrote `name op`).
        Ty::Protocol => "0".into(),
    }
}

/// True when the rule names a protocol with an operator or a set: an error of its own.
fn uses_protocol_value(node: &Node, level: usize) -> bool {
    if level > 4 * MAX_NESTING {
        return false;
    }
    match node {
        Node::Test { field, .. } | Node::Set { field, .. } => field_of(*field).ty == Ty::Protocol,
        Node::Present { .. } => false,
        Node::Not(i) | Node::Paren(i) => uses_protocol_value(i, level + 1),
        Node::Deep { inner, .. } => uses_protocol_value(inner, level + 1),
        Node::And(t) | Node::Or(t) => t.iter().take(64).any(|n| uses_protocol_value(n, level + 1)),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(node) = Node::arbitrary(&mut u) else { return };
    let mut text = String::new();
    let depth = render(&node, &mut text, 0);
    let parsed = classifier::parse(&text);
    if uses_protocol_value(&node, 0) {
        return; // refused for that (or for depth); either way not this target's oracle
    }
    let expr = match parsed {
        Ok(expr) => {
            assert!(depth <= MAX_NESTING, "nested {depth} deep and accepted: {text}");
            expr
        }
        Err(e) => {
            // IPv6 networks with host bits are fine in Wireshark, so the only refusal is depth.
            assert!(depth > MAX_NESTING, "refused at depth {depth}: {}", e.render(&text));
            assert!(e.message.contains("nest more than"), "{}", e.render(&text));
            return;
        }
    };
    let table = match RuleTable::build([&expr]) {
        Ok(t) => t,
        Err(e) => {
            assert!(matches!(e.error, CompileError::TooComplex | CompileError::TableTooLarge), "{e}");
            return;
        }
    };
    // Packets from the rest of the input, and from the rule's own values.
    let rest = u.take_rest();
    for (i, chunk) in rest.chunks(16).take(32).chain([&data[..data.len().min(16)]]).enumerate() {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        let h = classifier::limit::mix(u64::from_le_bytes(b[..8].try_into().unwrap_or_default()) ^ i as u64);
        let mut key = Key::new(u32::from(b[8]) * 16);
        let l4 = [6, 17, 1, 58][usize::from(b[9] & 3)];
        if b[10] & 1 == 0 {
            key.set_ipv4(
                (h as u32).to_be_bytes(),
                ((h >> 32) as u32).to_be_bytes(),
                l4,
                b[11],
                60,
                b[12] & 1 != 0,
                b[12] & 2 != 0,
                u16::from(b[13]),
            );
        } else {
            let v = |s: u64| (u128::from(classifier::limit::mix(s)) << 64 | u128::from(s)).to_be_bytes();
            key.set_ipv6(v(h), v(h ^ 1), l4, b[11], 40);
        }
        key.set_l4_proto(l4);
        match l4 {
            6 | 17 => key.set_ports(u16::from_be_bytes([b[13], b[14]]), (h >> 16) as u16),
            _ => key.set_icmp(b[13], b[14]),
        }
        if l4 == 6 {
            key.set_tcp_flags(u16::from(b[15]) << 1 & 0x1ff);
        }
        assert_eq!(
            table.first_match(&key, data).is_some(),
            classifier::eval::eval(&expr, &key, data),
            "{text}\n{key:?}"
        );
    }
});
