//! Azure action patterns: `Microsoft.Network/loadBalancers/read`, `Microsoft.Network/*`, `*/read`, `*`.
//! `*` matches any run of characters (including '/'), and matching ignores ASCII case, as Azure does.

/// True when `action` matches `pattern`.
///
/// A `*` standing for a whole segment (`…/userAssignedIdentities/*/assign/action`) may also stand for
/// none: Managed Identity Operator's pattern grants `…/userAssignedIdentities/assign/action`, the
/// action Azure checks when an identity is assigned.
pub fn matches(pattern: &str, action: &str) -> bool {
    glob(pattern, action) || (pattern.contains("/*/") && glob_optional_segments(pattern, action))
}

/// Allocation-free glob; this runs for every permission on every check.
fn glob(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.as_bytes(), action.as_bytes());
    let (mut pi, mut ai) = (0usize, 0usize);
    // Position of the last '*' seen and the action index it is currently standing in for.
    let mut star: Option<(usize, usize)> = None;
    while ai < a.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ai));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&a[ai]) {
            pi += 1;
            ai += 1;
        } else if let Some((sp, sa)) = star {
            pi = sp + 1;
            ai = sa + 1;
            star = Some((sp, sa + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Like [`glob`], but each whole-segment `*` (`/*/`) may also stand for no segment, independently
/// of the others (`A/*/b/*/c` matches `A/b/x/c`). Runs the pattern as an NFA over a bit set of
/// pattern positions, O(pattern × action) whatever the number of stars; only patterns holding
/// `/*/` that [`glob`] rejected get here. Patterns up to 255 bytes need no allocation.
fn glob_optional_segments(pattern: &str, action: &str) -> bool {
    let p = pattern.as_bytes();
    let words = (p.len() + 1).div_ceil(64);
    let mut stack = [0u64; 8];
    let mut heap: Vec<u64>;
    let (mut cur, mut next): (&mut [u64], &mut [u64]) = if 2 * words <= stack.len() {
        stack[..2 * words].split_at_mut(words)
    } else {
        heap = vec![0u64; 2 * words];
        heap.split_at_mut(words)
    };
    let get = |set: &[u64], i: usize| set[i / 64] & (1 << (i % 64)) != 0;
    let put = |set: &mut [u64], i: usize| set[i / 64] |= 1 << (i % 64);
    // Positions reachable without reading a character: past a `*` (it matched nothing) and,
    // for a whole-segment `*`, past the `/` after it too (the segment is absent).
    let close = |set: &mut [u64]| {
        for i in 0..p.len() {
            if p[i] == b'*' && get(set, i) {
                put(set, i + 1);
                if i > 0 && p[i - 1] == b'/' && p.get(i + 1) == Some(&b'/') {
                    put(set, i + 2);
                }
            }
        }
    };
    put(cur, 0);
    close(cur);
    for &c in action.as_bytes() {
        next.fill(0);
        let mut alive = false;
        for (i, &pc) in p.iter().enumerate() {
            if get(cur, i) && (pc == b'*' || pc.eq_ignore_ascii_case(&c)) {
                // A '*' reads the character and stays; a literal reads it and moves on.
                put(next, if pc == b'*' { i } else { i + 1 });
                alive = true;
            }
        }
        if !alive {
            return false;
        }
        close(next);
        std::mem::swap(&mut cur, &mut next);
    }
    get(cur, p.len())
}

/// A rough measure of how much a pattern grants, so "the least-privileged role that would grant
/// this" can be chosen: a literal action is 1; each literal segment before the first `*` narrows a
/// wildcard a hundredfold; a wildcard limited to `…/read` grants a thousandth as much.
pub fn breadth(pattern: &str) -> u64 {
    let Some(star) = pattern.find('*') else { return 1 };
    let literal_segments = pattern[..star].matches('/').count() as u32;
    let base = 1_000_000u64 / 100u64.pow(literal_segments.min(2));
    if pattern.to_ascii_lowercase().ends_with("/read") {
        (base / 1000).max(2)
    } else {
        base.max(10)
    }
}

/// An action must look like `{Provider}/{resourceType}/{operation}` or use wildcards.
pub fn validate(action: &str) -> crate::Result<()> {
    let ok = action == "*" || (action.contains('/') && !action.contains(char::is_whitespace) && !action.starts_with('/'));
    if ok {
        Ok(())
    } else {
        Err(crate::Error::InvalidArgument(format!(
            "invalid action '{action}': actions look like 'Microsoft.Network/loadBalancers/read', 'Microsoft.Network/*' or '*/read'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_case_match_as_azure_does() {
        assert!(matches("*", "Microsoft.Network/loadBalancers/read"));
        assert!(matches("*/read", "microsoft.network/loadbalancers/READ"));
        assert!(!matches("*/read", "Microsoft.Network/loadBalancers/write"));
        assert!(matches("Microsoft.Network/*", "Microsoft.Network/loadBalancers/write"));
        assert!(!matches("Microsoft.Network/*", "Microsoft.Compute/virtualMachines/read"));
        assert!(matches("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
        assert!(matches(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/x/assign/action"
        ));
        assert!(!matches("Microsoft.Network/loadBalancers/read", "Microsoft.Network/loadBalancers/readx"));
        assert!(matches("a*b*c", "aXXbYYbZc"));
        // Each whole-segment '*' may be absent on its own, not only all of them together.
        assert!(matches("Microsoft.Network/*/subnets/*/action", "Microsoft.Network/subnets/join/action"));
        assert!(matches("Microsoft.Network/*/*/action", "Microsoft.Network/action"));
        assert!(!matches("Microsoft.Network/*/subnets/*/action", "Microsoft.Network/subnets/join/read"));
    }

    #[test]
    fn read_wildcards_count_as_narrower_than_write_wildcards() {
        assert!(breadth("*/read") < breadth("Microsoft.Network/*"));
        assert!(breadth("Microsoft.Network/*") < breadth("*"));
        assert!(breadth("Microsoft.Network/loadBalancers/*") < breadth("Microsoft.Network/*"));
        assert_eq!(breadth("Microsoft.Network/loadBalancers/read"), 1);
    }
}
