-- ARGV[2]: now, ARGV[3]: lease in ms, ARGV[4]: at most this many.
return claim_batch(tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
