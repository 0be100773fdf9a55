//! Username and group templates (`{{AccountID}}`, `{{SessionName}}`, …): checking and rendering them.

use super::*;

/// The `{{…}}` tokens of a template, or a description of an unterminated one.
pub(super) fn template_tokens(template: &str) -> std::result::Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("'{{{{' without a closing '}}}}' in '{template}'"));
        };
        out.push(&after[..end]);
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Problems with the templates of one username or group; `is_user` for `mapUsers` entries.
pub(super) fn check_template(
    template: &str,
    what: &str,
    is_user: bool,
    errors: &mut Vec<(String, Option<String>)>,
    warnings: &mut Vec<(String, Option<String>)>,
) {
    match template_tokens(template) {
        Err(e) => errors.push((format!("{what} has {e}"), None)),
        Ok(tokens) => {
            for t in tokens {
                if TEMPLATE_VARIABLES.contains(&t) {
                    if is_user && t.starts_with("SessionName") {
                        warnings.push((format!("{what} uses {{{{{t}}}}}, but IAM users have no session: it renders empty"), None));
                    }
                    if is_user && t == "EC2PrivateDNSName" {
                        errors.push((format!("{what} uses {{{{EC2PrivateDNSName}}}}, which only an EC2 instance role session can render"), None));
                    }
                    continue;
                }
                let trimmed = t.trim();
                let best = TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| (v, strsim::levenshtein(&trimmed.to_lowercase(), &v.to_lowercase())))
                    .min_by_key(|(_, d)| *d)
                    .filter(|(_, d)| *d <= 3)
                    .map(|(v, _)| *v);
                let fix = best.map(|v| template.replace(&format!("{{{{{t}}}}}"), &format!("{{{{{v}}}}}")));
                let known = TEMPLATE_VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ");
                errors.push((format!("{what} uses unknown template variable {{{{{t}}}}} (upstream leaves it as literal text; known: {known})"), fix));
            }
        }
    }
}

/// What a caller's request offers the templates.
pub(super) struct TemplateInput<'a> {
    pub(super) account: &'a str,
    pub(super) session_name: &'a str,
    pub(super) access_key_id: &'a str,
}

/// Renders a username or group as upstream does, refusing what kite cannot render.
pub(super) fn render(template: &str, input: &TemplateInput) -> std::result::Result<String, String> {
    let tokens = template_tokens(template)?;
    if let Some(t) = tokens.iter().find(|t| !TEMPLATE_VARIABLES.contains(t)) {
        return Err(format!("'{template}' uses unknown template variable {{{{{t}}}}}"));
    }
    if tokens.contains(&"EC2PrivateDNSName") {
        return Err(format!(
            "'{template}' uses {{{{EC2PrivateDNSName}}}}, which upstream resolves by calling ec2:DescribeInstances for instance '{}'; \
             kite cannot resolve it offline",
            input.session_name
        ));
    }
    Ok(template
        .replace("{{AccountID}}", input.account)
        .replace("{{SessionNameRaw}}", input.session_name)
        .replace("{{SessionName}}", &input.session_name.replace('@', "-"))
        .replace("{{AccessKeyID}}", input.access_key_id))
}
