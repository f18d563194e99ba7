-- A worker's turn in one call: acks, then a claim. ARGV[2]: now, ARGV[3]:
-- lease in ms, ARGV[4]: claim at most this many, ARGV[5]: retention ms of
-- a succeeded task, then pairs of id and token to ack. Returns the acks'
-- statuses and the claim's reply, as acks.lua and claim.lua do.
local now = tonumber(ARGV[2])
local acked = ack_all(now, ARGV[5], 6)
return {acked, claim_batch(now, tonumber(ARGV[3]), ARGV[4])}
