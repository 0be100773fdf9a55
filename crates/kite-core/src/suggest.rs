//! "Did you mean" for names people mistype (`Contributer` → `Contributor`).

/// The candidate closest to `input` (case-insensitive Jaro-Winkler), if it is close enough to be a plausible typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let needle = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(&needle, &c.to_lowercase())))
        .filter(|(_, score)| *score >= 0.85)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_role_a_typo_meant_and_nothing_for_noise() {
        let roles = ["Owner", "Contributor", "Reader", "Network Contributor"];
        assert_eq!(closest("Contributer", roles), Some("Contributor"));
        assert_eq!(closest("network contributer", roles), Some("Network Contributor"));
        assert_eq!(closest("xyzzy", roles), None);
    }
}
