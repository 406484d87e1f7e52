#!/bin/sh
# fleetcert-hubsim: bulk registry operations (<= 100 entries, per-entry
# errors, 400011 for duplicate ids) and query paging with
# x-ms-max-item-count / x-ms-continuation.
. "$top_srcdir/tests/hubsim-lib.sh"
D=$HUBSIM_DIR

entries() { # mode from to
	seq "$2" "$3" | jq -s --arg m "$1" 'map({id: ("bk-" + (. | tostring)), importMode: $m, status: "enabled", authentication: {type: "sas"}})'
}

st=$(hubsim_call POST /devices "$(entries create 1 101)")
expect_error "$st" 413 413002 TooManyDevices a "bulk with 101 entries"
st=$(hubsim_call GET /statistics/devices)
body_jq '.totalDeviceCount == 0' || fail "refused bulk created devices"
ok "refused bulk created nothing"
dup=$(entries create 1 3 | jq '. + [.[0]]')
st=$(hubsim_call POST /devices "$dup")
expect_error "$st" 400 400011 DeviceDefinedMultipleTimes a "bulk with a duplicate id"
st=$(hubsim_call POST /devices '[]')
expect_error "$st" 400 400004 ArgumentInvalid a "empty bulk"
st=$(hubsim_call POST /devices '[{"importMode":"create"}]')
expect_error "$st" 400 400004 ArgumentInvalid a "bulk entry without id"

st=$(hubsim_call POST /devices "$(entries create 1 100)")
expect_status "$st" 200 "bulk create of 100"
body_jq '.isSuccessful == true and .errors == [] and .warnings == []' || fail "bulk result"
ok "bulk result isSuccessful with no errors"
hubsim_call GET /devices/bk-7 >/dev/null
etag7=$(jq -r .etag "$D/body")

# Mixed: per-entry errors, the rest applied.
mixed=$(jq -n --arg e7 "$etag7" '[
  {id:"bk-1", importMode:"create"},
  {id:"bk-new", importMode:"create", status:"enabled"},
  {id:"bk-nosuch", importMode:"update", status:"disabled"},
  {id:"bk-2", importMode:"update", status:"disabled", statusReason:"bulk revoke"},
  {id:"bk-3", importMode:"updateIfMatchETag", eTag:"\"bogus\"", status:"disabled"},
  {id:"bk-7", importMode:"updateIfMatchETag", eTag:("\"" + $e7 + "\""), status:"disabled"},
  {id:"bk-4", importMode:"delete"},
  {id:"bk-5", importMode:"deleteIfMatchETag", eTag:"\"bogus\""},
  {id:"bk-6", importMode:"updateTwin", tags:{fleet:"x"}, properties:{desired:{k:1}}},
  {id:"bk-8", importMode:"frobnicate"}
]')
st=$(hubsim_call POST /devices "$mixed")
expect_status "$st" 200 "mixed bulk"
jq -e '.isSuccessful == false and ([.errors[] | .deviceId + ":" + .errorCode] | sort) ==
  (["bk-1:DeviceAlreadyExists","bk-nosuch:DeviceNotFound","bk-3:PreconditionFailed","bk-5:PreconditionFailed","bk-8:ArgumentInvalid"] | sort)
  and all(.errors[]; (.errorStatus | length) > 0)' "$D/body" >/dev/null || fail "per-entry errors"
ok "per-entry errors name the device and the error"
hubsim_call GET /devices/bk-2 >/dev/null; body_jq '.status == "disabled" and .statusReason == "bulk revoke"' || fail "bk-2 disabled"
hubsim_call GET /devices/bk-7 >/dev/null; body_jq '.status == "disabled"' || fail "bk-7 disabled with matching eTag"
hubsim_call GET /devices/bk-3 >/dev/null; body_jq '.status == "enabled"' || fail "bk-3 must stay enabled"
st=$(hubsim_call GET /devices/bk-4); [ "$st" = 404 ] || fail "bk-4 deleted"
st=$(hubsim_call GET /devices/bk-new); [ "$st" = 200 ] || fail "bk-new created"
hubsim_call GET /twins/bk-6 >/dev/null; body_jq '.tags.fleet == "x" and .properties.desired.k == 1' || fail "updateTwin"
ok "the valid entries of the mixed bulk were applied"

# Query paging: 100 devices now (bk-1..100 minus bk-4, plus bk-new).
total=$(hubsim_call GET /statistics/devices >/dev/null; jq .totalDeviceCount "$D/body")
query() { # max continuation
	t=$(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")
	if [ -n "$2" ]; then
		hubsim_raw POST "$HUBSIM_URL/devices/query?api-version=2021-04-12" "$3" \
			-H "Authorization: $t" -H "x-ms-max-item-count: $1" -H "x-ms-continuation: $2"
	else
		hubsim_raw POST "$HUBSIM_URL/devices/query?api-version=2021-04-12" "$3" \
			-H "Authorization: $t" -H "x-ms-max-item-count: $1"
	fi
}
q='{"query":"SELECT * FROM devices"}'
cont="" pages=0
: > "$D/ids"
while :; do
	st=$(query 30 "$cont" "$q")
	[ "$st" = 200 ] || fail "query page $pages: $st"
	jq -r '.[].deviceId' "$D/body" >> "$D/ids"
	n=$(jq length "$D/body")
	[ "$n" -le 30 ] || fail "page larger than x-ms-max-item-count"
	pages=$((pages + 1))
	cont=$(hdr x-ms-continuation)
	[ -z "$cont" ] && break
	[ $pages -lt 50 ] || fail "paging does not end"
done
[ "$(wc -l < "$D/ids")" -eq "$total" ] || fail "query returned $(wc -l < "$D/ids") of $total"
[ "$(sort -u "$D/ids" | wc -l)" -eq "$total" ] || fail "duplicates across pages"
[ "$pages" -eq $(( (total + 29) / 30 )) ] || fail "$pages pages for $total devices"
ok "query paged to the end: $total devices in $pages pages, no duplicates"
st=$(query 10 "" '{"query":"SELECT * FROM devices WHERE status = '"'"'disabled'"'"'"}')
expect_status "$st" 200 "query with WHERE"
jq -e '(map(.deviceId) | sort) == ["bk-2","bk-7"]' "$D/body" >/dev/null || fail "WHERE status"
st=$(query 10 "" '{"query":"SELECT * FROM devices WHERE tags.fleet = '"'"'x'"'"' AND properties.desired.k = 1"}')
jq -e 'map(.deviceId) == ["bk-6"]' "$D/body" >/dev/null || fail "WHERE tags AND desired"
st=$(query 10 "" '{"query":"SELECT * FROM devices WHERE IS_DEFINED(tags.fleet) OR deviceId = '"'"'bk-9'"'"'"}')
jq -e '(map(.deviceId) | sort) == ["bk-6","bk-9"]' "$D/body" >/dev/null || fail "IS_DEFINED OR"
st=$(query 10 "" '{"query":"SELECT * FROM devices WHERE deviceId IN ['"'"'bk-9'"'"', '"'"'bk-10'"'"', '"'"'nosuch'"'"'] AND status = '"'"'enabled'"'"'"}')
jq -e '(map(.deviceId) | sort) == ["bk-10","bk-9"]' "$D/body" >/dev/null || fail "IN list"
ok "query conditions"
st=$(query 101 "" "$q")
expect_error "$st" 400 400004 ArgumentInvalid a "x-ms-max-item-count 101"
st=$(query 10 "not-a-token!" "$q")
expect_error "$st" 400 400004 ArgumentInvalid a "bad continuation token"
st=$(query 10 "" '{"query":"DROP TABLE devices"}')
expect_error "$st" 400 400004 ArgumentInvalid a "unsupported query"
