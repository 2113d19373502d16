//! Bad input gets an answer, never a panic: arbitrary request targets (node
//! selectors, escapes, queries) and bodies against a server holding a document.

mod common;

use common::*;
use cpim_xcap::Request;
use proptest::prelude::*;

fn target_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("resource-lists".to_owned()),
        Just("list".to_owned()),
        Just("entry".to_owned()),
        Just("*".to_owned()),
        Just("[1]".to_owned()),
        Just("[@name=\"friends\"]".to_owned()),
        Just("[@uri='x']".to_owned()),
        Just("@uri".to_owned()),
        Just("/".to_owned()),
        Just("%5b".to_owned()),
        Just("%22".to_owned()),
        Just("%".to_owned()),
        Just("~~".to_owned()),
        Just("?xmlns(p=urn:x)".to_owned()),
        Just("p:".to_owned()),
        "[ -~]{0,6}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| format!("{}/~~/{}", rl(ALICE), v.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_target_and_body_gets_an_answer(
        target in target_strategy(),
        method in prop_oneof![Just("GET"), Just("PUT"), Just("DELETE")],
        ct in prop_oneof![Just(EL), Just(ATT), Just(RL_MIME)],
        body in prop_oneof![
            Just("<entry uri=\"sip:x@example.com\"/>".to_owned()),
            Just("<list name=\"n\"/>".to_owned()),
            "[ -~]{0,40}",
        ],
    ) {
        let mut s = server();
        prop_assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS).status, 201);
        let r = s.handle(&Request {
            content_type: Some(ct),
            body: body.as_bytes(),
            ..req(method, &target, ALICE)
        });
        prop_assert!((200..600).contains(&r.status));
        // Whatever happened, the document is still readable and well-formed.
        let g = get(&mut s, &rl(ALICE), ALICE);
        if g.status == 200 {
            prop_assert!(cpim_core::xml::parse(&g.body).is_ok());
        }
    }
}
