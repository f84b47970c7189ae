//! `/api/group/*` over real HTTP: creating groups, roles, updates, member
//! changes and admin succession, direct chats, and that the caller's identity
//! comes from the token only.

use serde_json::{Value, json};

use crate::common::{Reply, TestServer, create_group};

async fn create(srv: &TestServer, token: &str, body: Value) -> Reply {
    srv.post("/api/group/create", Some(token), body).await
}

/// (uid, role) of every member of `gid` as `token`'s owner sees them, sorted by uid.
async fn members(srv: &TestServer, token: &str, gid: u64) -> Vec<(u64, u64)> {
    let r = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(token))
        .await;
    let mut out: Vec<(u64, u64)> = r
        .assert_ok()
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_u64().unwrap(),
                m["role"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

/// The groups `token`'s owner belongs to, as returned.
async fn groups_of(srv: &TestServer, token: &str) -> Vec<Value> {
    let r = srv.get("/api/group/get", Some(token)).await;
    r.assert_ok().as_array().expect("groups").clone()
}

async fn group_ids(srv: &TestServer, token: &str) -> Vec<u64> {
    groups_of(srv, token)
        .await
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect()
}

async fn change(srv: &TestServer, token: &str, gid: u64, uids: &[u64], op: i64) -> Reply {
    srv.post(
        "/api/group/user/change",
        Some(token),
        json!({"gid": gid, "uids": uids, "opType": op}),
    )
    .await
}

async fn history(srv: &TestServer, token: &str, gid: u64) -> Reply {
    srv.post("/api/message/history", Some(token), json!({"gid": gid}))
        .await
}

#[tokio::test]
async fn the_creator_is_admin_and_members_get_the_roles_asked_for() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, _) = srv.user("carol").await;
    let r = create(
        &srv,
        &ta,
        json!({"group": {"name": "team", "avatar": "t.png", "mode": 0, "creatorUid": b},
               "users": [{"uid": b}, {"uid": c, "role": 2}, {"uid": b, "role": 1}, {"uid": a, "role": 1}]}),
    )
    .await;
    let gid = r.assert_ok().as_u64().expect("gid");
    // Duplicates collapse; the creator stays admin even when listed as a member.
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 2)]);

    // The member rows are full users, private fields only for oneself.
    let r = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(&tb))
        .await;
    for m in r.assert_ok().as_array().unwrap() {
        assert_eq!(m["user"]["password"], "");
        let own = m["user"]["id"] == b;
        assert_eq!(m["user"]["email"] != "", own, "{m}");
    }

    let groups = groups_of(&srv, &tb).await;
    assert_eq!(
        groups,
        vec![
            json!({"id": gid, "name": "team", "avatar": "t.png", "mode": 0, "creatorUid": a, "notify": "mentions"})
        ],
        "creatorUid comes from the token, not the body"
    );
}

#[tokio::test]
async fn an_unknown_member_is_404_and_nothing_is_created() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let r = create(
        &srv,
        &ta,
        json!({"group": {"name": "team"}, "users": [{"uid": b}, {"uid": 999_999}]}),
    )
    .await;
    r.assert_error(404);
    assert!(groups_of(&srv, &ta).await.is_empty());
    assert!(groups_of(&srv, &tb).await.is_empty());
}

#[tokio::test]
async fn create_refuses_direct_mode_bad_names_and_bad_roles() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, _) = srv.user("bob").await;
    let long = "n".repeat(65);
    let bad = [
        json!({"group": {"name": "dm", "mode": 1}, "users": [{"uid": b}]}),
        json!({"group": {"name": ""}, "users": []}),
        json!({"group": {"name": "   "}}),
        json!({"group": {"name": long}}),
        json!({"group": {"name": "roles"}, "users": [{"uid": b, "role": 3}]}),
        json!({"group": {"name": "roles"}, "users": [{"uid": b, "role": 0}]}),
        json!({"group": {"name": "ctl\u{7}"}}),
        json!({"users": [{"uid": b}]}),
    ];
    for body in bad {
        let r = create(&srv, &ta, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.json);
        r.assert_error(400);
    }
    assert!(groups_of(&srv, &ta).await.is_empty());

    // Without users the creator is alone; the mode is always a group's.
    let gid = create(&srv, &ta, json!({"group": {"name": "solo"}}))
        .await
        .assert_ok()
        .as_u64()
        .unwrap();
    let groups = groups_of(&srv, &ta).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["id"], gid);
    assert_eq!(groups[0]["mode"], 0);
    assert_eq!(groups[0]["avatar"], "");
    assert_eq!(members(&srv, &ta, gid).await.len(), 1);
    // Any other mode is accepted for rim compatibility and still makes a group.
    let other = create(&srv, &ta, json!({"group": {"name": "m", "mode": 2}}))
        .await
        .assert_ok()
        .as_u64()
        .unwrap();
    let groups = groups_of(&srv, &ta).await;
    assert_eq!(groups[1]["id"], other);
    assert_eq!(groups[1]["mode"], 0);
}

#[tokio::test]
async fn group_get_lists_the_callers_groups_only() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let g1 = create_group(&srv, &ta, "one", &[b]).await;
    srv.befriend(&tb, c, &tc, b).await;
    let g2 = create_group(&srv, &tb, "two", &[c]).await;
    let dm = srv.direct(&ta, b).await;

    let groups = groups_of(&srv, &ta).await;
    assert_eq!(
        groups,
        vec![
            json!({"id": g1, "name": "one", "avatar": "", "mode": 0, "creatorUid": a, "notify": "mentions"}),
            json!({"id": dm, "name": "", "avatar": "", "mode": 1, "creatorUid": a, "notify": "all"}),
        ]
    );
    assert_eq!(group_ids(&srv, &tb).await, vec![g1, g2, dm]);
    assert_eq!(group_ids(&srv, &tc).await, vec![g2]);

    // A uid in the query is ignored: it is always the caller's list.
    let r = srv.get(&format!("/api/group/get?uid={b}"), Some(&tc)).await;
    let ids: Vec<u64> = r
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![g2]);
    let r = srv.get(&format!("/api/group/get?uid={c}"), Some(&ta)).await;
    let ids: Vec<u64> = r
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![g1, dm]);
}

#[tokio::test]
async fn members_of_a_foreign_or_unknown_group_are_not_shown() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, _) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "team", &[b]).await;
    srv.get(&format!("/api/group/user/get?gid={gid}"), Some(&tc))
        .await
        .assert_error(403);
    srv.get(&format!("/api/group/user/get?gid={gid}&uid={b}"), Some(&tc))
        .await
        .assert_error(403);
    srv.get("/api/group/user/get?gid=999999", Some(&tc))
        .await
        .assert_error(404);
    srv.get("/api/group/user/get", Some(&tc))
        .await
        .assert_error(400);
}

#[tokio::test]
async fn only_an_admin_updates_a_group() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "team", &[b]).await;

    let r = srv
        .post(
            "/api/group/update",
            Some(&ta),
            json!({"id": gid, "name": "renamed", "avatar": "new.png"}),
        )
        .await;
    assert_eq!(r.assert_ok(), &json!(true));
    assert_eq!(
        groups_of(&srv, &tb).await[0],
        json!({"id": gid, "name": "renamed", "avatar": "new.png", "mode": 0, "creatorUid": a, "notify": "mentions"})
    );
    // A field left out keeps its value.
    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": gid, "avatar": "newer.png"}),
    )
    .await
    .assert_ok();
    let g = &groups_of(&srv, &tb).await[0];
    assert_eq!(
        (g["name"].as_str(), g["avatar"].as_str()),
        (Some("renamed"), Some("newer.png"))
    );

    srv.post(
        "/api/group/update",
        Some(&tb),
        json!({"id": gid, "name": "mine"}),
    )
    .await
    .assert_error(403);
    srv.post(
        "/api/group/update",
        Some(&tc),
        json!({"id": gid, "name": "mine"}),
    )
    .await
    .assert_error(403);
    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": 999_999, "name": "x"}),
    )
    .await
    .assert_error(404);
    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": gid, "name": " "}),
    )
    .await
    .assert_error(400);
    let dm = srv.direct(&ta, b).await;
    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": dm, "name": "dm"}),
    )
    .await
    .assert_error(400);
    assert_eq!(groups_of(&srv, &tb).await[0]["name"], "renamed");
}

#[tokio::test]
async fn adding_members_never_duplicates_them() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, _) = srv.user("carol").await;
    let (d, _) = srv.user("dave").await;
    let gid = create_group(&srv, &ta, "team", &[b]).await;

    assert_eq!(
        change(&srv, &ta, gid, &[b, c, c, a], 1).await.assert_ok(),
        &json!(true)
    );
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);
    change(&srv, &ta, gid, &[b, c], 1).await.assert_ok();
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);

    // One unknown user fails the whole request: dave is not added either.
    change(&srv, &ta, gid, &[d, 999_999], 1)
        .await
        .assert_error(404);
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);

    // Plain members cannot add anyone.
    change(&srv, &tb, gid, &[d], 1).await.assert_error(403);
    change(&srv, &ta, gid, &[], 1).await.assert_error(400);
    change(&srv, &ta, 999_999, &[d], 1).await.assert_error(404);
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);
}

#[tokio::test]
async fn removing_members_is_for_admins_or_oneself() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let (d, td) = srv.user("dave").await;
    let gid = create_group(&srv, &ta, "team", &[b, c, d]).await;
    let mut wa = srv.ws_login(&ta).await;
    assert_eq!(wa.send_msg(gid, "hello team", "h1").await["kind"], "Ack");
    history(&srv, &tc, gid).await.assert_ok();

    change(&srv, &tb, gid, &[c], 2).await.assert_error(403);
    change(&srv, &tb, gid, &[b, c], 2).await.assert_error(403);
    for op in [0, 5, -1] {
        change(&srv, &ta, gid, &[c], op).await.assert_error(400);
    }
    assert_eq!(
        members(&srv, &ta, gid).await,
        vec![(a, 2), (b, 1), (c, 1), (d, 1)]
    );

    // The admin removes carol: she loses access to everything in it.
    assert_eq!(
        change(&srv, &ta, gid, &[c], 2).await.assert_ok(),
        &json!(true)
    );
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (d, 1)]);
    history(&srv, &tc, gid).await.assert_error(403);
    srv.get(&format!("/api/group/user/get?gid={gid}"), Some(&tc))
        .await
        .assert_error(403);
    assert!(group_ids(&srv, &tc).await.is_empty());
    let r = srv
        .post("/api/message/group/read", Some(&tc), json!({"gid": gid}))
        .await;
    r.assert_error(403);

    // Bob, a plain member, leaves by himself.
    change(&srv, &tb, gid, &[b], 2).await.assert_ok();
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (d, 1)]);
    history(&srv, &tb, gid).await.assert_error(403);
    // Dave still reads.
    history(&srv, &td, gid).await.assert_ok();
}

#[tokio::test]
async fn when_the_last_admin_leaves_the_longest_standing_member_takes_over() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    // Carol joins first, bob later (bob has the lower uid, so a tie on the
    // join time would pick him: the test tells the two orders apart).
    let gid = create_group(&srv, &ta, "team", &[c]).await;
    // Join times have millisecond resolution; make sure bob's is later:
    // carol's was taken before her group was answered, so once the clock
    // shows a later millisecond, bob's will be later too.
    let carol_joined = rim::time::now_ms();
    while rim::time::now_ms() <= carol_joined {
        tokio::task::yield_now().await;
    }
    change(&srv, &ta, gid, &[b], 1).await.assert_ok();
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);

    change(&srv, &ta, gid, &[a], 2).await.assert_ok();
    assert_eq!(members(&srv, &tb, gid).await, vec![(b, 1), (c, 2)]);
    // And carol has the powers that come with it.
    srv.post(
        "/api/group/update",
        Some(&tc),
        json!({"id": gid, "name": "carol's"}),
    )
    .await
    .assert_ok();
    srv.post(
        "/api/group/update",
        Some(&tb),
        json!({"id": gid, "name": "bob's"}),
    )
    .await
    .assert_error(403);
}

#[tokio::test]
async fn with_another_admin_left_nobody_is_promoted() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, _) = srv.user("carol").await;
    let r = create(
        &srv,
        &ta,
        json!({"group": {"name": "two admins"}, "users": [{"uid": b, "role": 2}, {"uid": c}]}),
    )
    .await;
    let gid = r.assert_ok().as_u64().unwrap();
    change(&srv, &ta, gid, &[a], 2).await.assert_ok();
    // Bob was already an admin: carol stays a member.
    assert_eq!(members(&srv, &tb, gid).await, vec![(b, 2), (c, 1)]);
    // The last member leaving leaves an empty group nobody can see.
    change(&srv, &tb, gid, &[b, c], 2).await.assert_ok();
    assert!(group_ids(&srv, &tb).await.is_empty());
}

#[tokio::test]
async fn a_direct_chat_is_one_conversation_per_pair() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let gid = srv.direct(&ta, b).await;
    assert_eq!(srv.direct(&tb, a).await, gid);
    assert_eq!(srv.direct(&ta, b).await, gid);
    assert_eq!(srv.direct(&tb, a).await, gid);

    assert_eq!(members(&srv, &tb, gid).await, vec![(a, 1), (b, 1)]);
    for token in [&ta, &tb] {
        let groups = groups_of(&srv, token).await;
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0]["id"], gid);
        assert_eq!(groups[0]["mode"], 1);
    }
    // Its members are fixed.
    let (c, _) = srv.user("carol").await;
    change(&srv, &ta, gid, &[c], 1).await.assert_error(400);
    change(&srv, &ta, gid, &[b], 2).await.assert_error(400);
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 1), (b, 1)]);
}

#[tokio::test]
async fn a_direct_chat_needs_a_friend_or_a_shared_group() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let direct = |token: &str, uid: u64| {
        let token = token.to_owned();
        let srv = &srv;
        async move {
            srv.post("/api/group/direct", Some(&token), json!({"uid": uid}))
                .await
        }
    };
    direct(&ta, b).await.assert_error(403);
    direct(&tb, a).await.assert_error(403);
    direct(&ta, a).await.assert_error(400);
    direct(&ta, 999_999).await.assert_error(404);
    // A pending request is not a friendship.
    srv.post("/api/friend/add", Some(&ta), json!({"fid": b}))
        .await
        .assert_ok();
    direct(&ta, b).await.assert_error(403);
    direct(&tb, a).await.assert_error(403);
    assert!(groups_of(&srv, &ta).await.is_empty());

    // Sharing a group is enough, from either side (alice, the first
    // account, is a server admin and may put anyone in a group).
    create_group(&srv, &ta, "club", &[c]).await;
    let gid = direct(&ta, c).await.assert_ok().as_u64().unwrap();
    assert_eq!(direct(&tc, a).await.assert_ok(), &json!(gid));
    assert_eq!(members(&srv, &tc, gid).await, vec![(a, 1), (c, 1)]);
    // bob shares nothing with carol.
    direct(&tb, c).await.assert_error(403);
}

/// `uids` added to `gid` by `token`'s user (opType 1); the reply.
async fn add_members(srv: &TestServer, token: &str, gid: u64, uids: &[u64]) -> Reply {
    srv.post(
        "/api/group/user/change",
        Some(token),
        json!({"gid": gid, "uids": uids, "opType": 1}),
    )
    .await
}

#[tokio::test]
async fn only_friends_can_be_put_in_a_group_unless_a_server_admin_does_it() {
    let srv = TestServer::start().await;
    // The first account is the server's admin.
    let (admin, tadmin) = srv.user("root").await;
    let (victim, tv) = srv.user("victim").await;
    let (stranger, ts) = srv.user("stranger").await;
    let (friend, tf) = srv.user("friend").await;
    srv.befriend(&ts, friend, &tf, stranger).await;

    // A stranger can put the victim in no group, at creation or later...
    let body = json!({"group": {"name": "spam"}, "users": [{"uid": victim}]});
    create(&srv, &ts, body).await.assert_error(403);
    let gid = create_group(&srv, &ts, "mine", &[friend]).await;
    add_members(&srv, &ts, gid, &[victim])
        .await
        .assert_error(403);
    // ...and nothing of a refused change stays, not even the friend's part
    // of a mixed one.
    let (pal, tp) = srv.user("pal").await;
    srv.befriend(&ts, pal, &tp, stranger).await;
    add_members(&srv, &ts, gid, &[pal, victim])
        .await
        .assert_error(403);
    assert!(groups_of(&srv, &tv).await.is_empty());
    assert!(groups_of(&srv, &tp).await.is_empty());
    let (other, _) = srv.user("other").await;
    assert_eq!(
        members(&srv, &ts, gid).await,
        vec![(stranger, 2), (friend, 1)]
    );
    // So no shared group opens a direct chat the friends rule refuses.
    srv.post("/api/group/direct", Some(&ts), json!({"uid": victim}))
        .await
        .assert_error(403);

    // A friend can be added; a server admin may add anyone.
    srv.befriend(&tv, stranger, &ts, victim).await;
    add_members(&srv, &ts, gid, &[victim]).await.assert_ok();
    let club = create_group(&srv, &tadmin, "club", &[stranger, other]).await;
    assert_eq!(
        members(&srv, &tadmin, club).await,
        vec![(admin, 2), (stranger, 1), (other, 1)]
    );
    // Anyone may leave a group they were put in.
    srv.post(
        "/api/group/user/change",
        Some(&ts),
        json!({"gid": club, "uids": [stranger], "opType": 2}),
    )
    .await
    .assert_ok();
    assert_eq!(
        members(&srv, &tadmin, club).await,
        vec![(admin, 2), (other, 1)]
    );
}

#[tokio::test]
async fn group_creation_and_member_adds_are_rate_limited() {
    let srv = TestServer::start_with(|c| {
        c.rate_limits.groups_per_user_per_hour = 3;
        c.rate_limits.member_adds_per_user_per_hour = 4;
    })
    .await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    srv.befriend(&tb, c, &tc, b).await;
    // Group creation: three an hour.
    for i in 0..3 {
        create_group(&srv, &tc, &format!("g{i}"), &[]).await;
    }
    let r = create(&srv, &tc, json!({"group": {"name": "g3"}, "users": []})).await;
    r.assert_error(429);
    // Member adds: four an hour, at creation and later alike; a request
    // larger than what is left is refused whole.
    let gid = create_group(&srv, &tb, "adds", &[c]).await;
    let (d, td) = srv.user("dave").await;
    srv.befriend(&tb, d, &td, b).await;
    add_members(&srv, &tb, gid, &[d]).await.assert_ok();
    add_members(&srv, &tb, gid, &[c, d, c])
        .await
        .assert_error(429);
    add_members(&srv, &tb, gid, &[c, d]).await.assert_ok();
    add_members(&srv, &tb, gid, &[d]).await.assert_error(429);
    // Someone else's limits are their own.
    create_group(&srv, &ta, "alice's", &[b, c, d]).await;
}
