#!/bin/sh
# fleetcert-hubsim: twins — merge, null delete, $version, etags, PUT
# replace, limits (size, keys, depth, strings), reported is device-only.
. "$top_srcdir/tests/hubsim-lib.sh"

st=$(hubsim_call PUT /devices/tw-1 "$(dev_json tw-1)")
expect_status "$st" 200 "create tw-1"
st=$(hubsim_call GET /twins/tw-1)
expect_status "$st" 200 "get twin"
body_jq '.deviceId == "tw-1" and .version >= 1 and .properties.desired["$version"] == 1 and (.etag|length > 0) and .tags == {}' || fail "twin shape"
etag0=$(jq -r .etag "$HUBSIM_DIR/body")

st=$(hubsim_call PATCH /twins/tw-1 '{"tags":{"site":"a","keep":1},"properties":{"desired":{"x":{"y":1,"z":2},"w":3}}}')
expect_status "$st" 200 "patch"
body_jq '.tags == {"site":"a","keep":1} and .properties.desired.x == {"y":1,"z":2} and .properties.desired.w == 3 and .properties.desired["$version"] == 2' || fail "patch merged"
st=$(hubsim_call PATCH /twins/tw-1 '{"tags":{"site":null},"properties":{"desired":{"x":{"y":null,"n":{"m":null,"k":true}}}}}')
expect_status "$st" 200 "patch with nulls"
body_jq '.tags == {"keep":1} and .properties.desired.x == {"z":2,"n":{"k":true}} and .properties.desired.w == 3 and .properties.desired["$version"] == 3' || fail "null deletes, merge is deep"
ok "null removes a property; nested merge"
etag1=$(jq -r .etag "$HUBSIM_DIR/body")
[ "$etag1" != "$etag0" ] || fail "twin etag unchanged"

patch_if() {
	curl -sS --cacert "$HUBSIM_CA" -X "${3:-PATCH}" -o "$HUBSIM_DIR/body" -D "$HUBSIM_DIR/headers" -w '%{http_code}' \
		-H "Authorization: $(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")" -H "If-Match: $2" \
		-H 'Content-Type: application/json' --data-binary "$1" "$HUBSIM_URL/twins/tw-1?api-version=2021-04-12"
}
st=$(patch_if '{"tags":{"b":1}}' "\"$etag0\"")
expect_error "$st" 412 412001 PreconditionFailed a "twin patch with a stale etag"
st=$(patch_if '{"tags":{"b":1}}' "\"$etag1\"")
expect_status "$st" 200 "twin patch with the current etag"
st=$(patch_if '{"tags":{"c":1}}' "$etag0")
expect_status "$st" 200 "twin patch with an unquoted stale etag (ignored)"
st=$(patch_if '{"tags":{"only":1},"properties":{"desired":{"fresh":1}}}' '*' PUT)
expect_status "$st" 200 "twin PUT"
body_jq '.tags == {"only":1} and (.properties.desired | del(.["$metadata"], .["$version"])) == {"fresh":1}' || fail "PUT replaces tags and desired"
ok "PUT replaced tags and desired"
v=$(jq '.properties.desired["$version"]' "$HUBSIM_DIR/body")
st=$(hubsim_call PATCH /twins/tw-1 '{"properties":{"desired":{"fresh":1}}}')
body_jq ".properties.desired[\"\$version\"] == $v" || fail "no-op patch must not bump \$version"
ok "a patch that changes nothing keeps \$version"

# Limits.
big=$(head -c 33000 /dev/zero | tr '\0' a)
chunk=$(head -c 4000 /dev/zero | tr '\0' b)
st=$(hubsim_call PATCH /twins/tw-1 "{\"properties\":{\"desired\":{\"a1\":\"$chunk\",\"a2\":\"$chunk\",\"a3\":\"$chunk\",\"a4\":\"$chunk\",\"a5\":\"$chunk\",\"a6\":\"$chunk\",\"a7\":\"$chunk\",\"a8\":\"$chunk\",\"a9\":\"$chunk\"}}}")
expect_error "$st" 413 413001 MessageTooLarge a "desired over 32 KB"
st=$(hubsim_call PATCH /twins/tw-1 "{\"tags\":{\"a1\":\"$chunk\",\"a2\":\"$chunk\",\"a3\":\"$chunk\"}}")
expect_error "$st" 413 413001 MessageTooLarge a "tags over 8 KB"
st=$(hubsim_call PATCH /twins/tw-1 "{\"tags\":{\"s\":\"$big\"}}")
expect_error "$st" 400 400004 ArgumentInvalid a "string value over 4 KB"
st=$(hubsim_call PATCH /twins/tw-1 '{"tags":{"a.b":1}}')
expect_error "$st" 400 400004 ArgumentInvalid a "key with a dot"
st=$(hubsim_call PATCH /twins/tw-1 '{"properties":{"desired":{"a b":1}}}')
expect_error "$st" 400 400004 ArgumentInvalid a "key with a space"
st=$(hubsim_call PATCH /twins/tw-1 '{"properties":{"desired":{"$x":1}}}')
expect_error "$st" 400 400004 ArgumentInvalid a "key with a dollar"
deep='{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":{"l7":{"l8":{"l9":{"l10":{"l11":1}}}}}}}}}}}'
st=$(hubsim_call PATCH /twins/tw-1 "{\"properties\":{\"desired\":$deep}}")
expect_error "$st" 400 400004 ArgumentInvalid a "nesting deeper than 10"
ok10='{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":{"l7":{"l8":{"l9":{"l10":1}}}}}}}}}}'
st=$(hubsim_call PATCH /twins/tw-1 "{\"properties\":{\"desired\":$ok10}}")
expect_status "$st" 200 "nesting of exactly 10"
st=$(hubsim_call PATCH /twins/tw-1 '{"properties":{"reported":{"x":1}}}')
expect_error "$st" 400 400004 ArgumentInvalid a "service writing reported"
st=$(hubsim_call PATCH /twins/tw-1 '[1]')
expect_error "$st" 400 400004 ArgumentInvalid a "twin patch that is not an object"
st=$(hubsim_call GET /twins/nosuch)
expect_error "$st" 404 404001 DeviceNotFound a "twin of an unknown device"
hubsim_call GET /twins/tw-1 >/dev/null
body_jq '.properties.desired.a1 == null and .tags.s == null' || fail "refused patches applied nothing"
ok "refused patches left the twin unchanged"
