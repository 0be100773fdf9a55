use super::*;

#[test]
fn session_names_render_with_at_signs_replaced_and_raw_left_alone() {
    let input = TemplateInput { account: "111122223333", session_name: "jdoe@example.com", access_key_id: "ASIAEXAMPLE" };
    assert_eq!(
        render("a-{{AccountID}}-{{SessionName}}-{{SessionNameRaw}}-{{AccessKeyID}}", &input).as_deref(),
        Ok("a-111122223333-jdoe-example.com-jdoe@example.com-ASIAEXAMPLE")
    );
    assert!(render("system:node:{{EC2PrivateDNSName}}", &input).is_err());
    assert!(render("{{Nope}}", &input).is_err());
    assert!(render("x{{SessionName", &input).is_err());
}

#[test]
fn block_lines_find_each_list_item_of_a_block_scalar() {
    let doc = "data:\n  mapRoles: |\n    - rolearn: a\n      username: x\n    - rolearn: b\nkind: ConfigMap\n";
    assert_eq!(block_lines(doc, "mapRoles"), Some((2, vec![3, 5])));
}
