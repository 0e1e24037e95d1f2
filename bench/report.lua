-- report.lua -- turns the records the benchmark programs print into tables.
--
--   lua5.4 bench/report.lua SECTION [FILE]      (FILE: the records, default standard input)
--
-- SECTION is sse, requests, gather, memory or neovim. Every figure is the median of the runs
-- with the min-max beside it; ratios compare medians. Under each table a line restates the
-- goal and says whether these figures meet it. Nothing here fails on time: it only prints.
local section, path = arg[1], arg[2]
assert(section, "usage: report.lua sse|requests|gather|memory|neovim [FILE]")

local MB = 1024 * 1024
local unpack_rows = rawget(table, "unpack") or rawget(_G, "unpack")

local function split(line, sep)
  local out = {}
  for field in (line .. sep):gmatch("(.-)" .. sep) do out[#out + 1] = field end
  return out
end

local function numbers(list)
  local out = {}
  for _, s in ipairs(split(list, ",")) do out[#out + 1] = tonumber(s) end
  return out
end

local function median(values)
  local sorted = {}
  for i, v in ipairs(values) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

local function min_max(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  return lo, hi
end

-- "median (min-max)" of values, each shown with fmt; unit follows the median.
local function spread(values, fmt, unit)
  local lo, hi = min_max(values)
  return string.format(fmt .. "%s (" .. fmt .. "-" .. fmt .. ")", median(values), unit or "", lo, hi)
end

local function map(values, fn)
  local out = {}
  for i, v in ipairs(values) do out[i] = fn(v) end
  return out
end

-- Rows of a table: pad each column to its widest cell.
local function print_table(header, rows)
  local widths = {}
  for _, row in ipairs({ header, unpack_rows(rows) }) do
    for i, cell in ipairs(row) do
      if not widths[i] or #cell > widths[i] then widths[i] = #cell end
    end
  end
  for r, row in ipairs({ header, unpack_rows(rows) }) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i == #row and cell or cell .. string.rep(" ", widths[i] - #cell)
    end
    print(table.concat(cells, "  "))
    if r == 1 then
      local rule = {}
      for i = 1, #header do rule[i] = string.rep("-", widths[i]) end
      print(table.concat(rule, "  "))
    end
  end
end

local records = {}
local input = path and assert(io.open(path)) or io.stdin
for line in input:lines() do
  local fields = split(line, "\t")
  if fields[1] == section or (section == "requests" and fields[1] == "request")
    or (section == "neovim" and fields[1] == "nvim")
    or (section == "sse" and (fields[1] == "linear" or fields[1] == "read")) then
    records[#records + 1] = fields
  end
end
if input ~= io.stdin then input:close() end

local function verdict(ok) return ok and "met" or "NOT met" end

local report = {}

function report.sse()
  local corpora, order, linear = {}, {}, {}
  local read, read_order = {}, {}
  for _, r in ipairs(records) do
    if r[1] == "sse" or r[1] == "read" then
      local name = r[2]
      local into, names = corpora, order
      if r[1] == "read" then into, names = read, read_order end
      if not into[name] then
        into[name] = {}
        names[#names + 1] = name
      end
      table.insert(into[name], { parser = r[3], runtime = r[4], bytes = tonumber(r[5]),
                                 events = tonumber(r[6]), times = numbers(r[7]) })
    elseif r[1] == "linear" then
      linear[#linear + 1] = r
    end
  end
  -- eventsource-parser first, then agentruns.sse (tables, then feed_flat), the table floor, then the
  -- parser alone in C (runtime "C") and pure Lua
  local function rank(e)
    if e.parser:find("^eventsource") then return 1 end
    if e.parser == "agentruns.sse" then return 2 end
    if e.parser:find("^agentruns") then return 3 end
    if e.parser == "table floor" then return 4 end
    return 5
  end
  local function rate(e) return e.events / median(e.times) end
  local rows = {}
  -- lowest[goal] = { ratio, corpus, runtime }: the worst case each goal line reports
  local lowest = {}
  local function note(goal, ratio, name, runtime)
    if ratio and (not lowest[goal] or ratio < lowest[goal].ratio) then
      lowest[goal] = { ratio = ratio, corpus = name, runtime = runtime }
    end
  end
  -- Sort a corpus's rows (eventsource-parser first); the divisor and unit its rates are shown in.
  local function arrange(list)
    table.sort(list, function(a, b)
      if rank(a) ~= rank(b) then return rank(a) < rank(b) end
      return a.runtime < b.runtime
    end)
    local top = rate(list[1])
    if top >= 1e6 then return 1e6, "M" elseif top >= 1e3 then return 1e3, "k" end
    return 1, ""
  end
  -- A row's cells up to its ratio to eventsource-parser: the corpus (on its first row), parser,
  -- runtime, events/s and MB/s per run.
  local function cells(i, name, e, div, unit, ratio)
    return { i == 1 and string.format("%s (%.1f MB, %d events)", name, e.bytes / MB, e.events) or "",
             e.parser, e.runtime, spread(map(e.times, function(t) return e.events / t / div end), "%.2f", unit),
             spread(map(e.times, function(t) return e.bytes / MB / t end), "%.0f"),
             ratio and string.format("%.2fx", ratio) or "-" }
  end
  for _, name in ipairs(order) do
    local list = corpora[name]
    local div, unit = arrange(list)
    local base, floors = nil, {}
    for _, e in ipairs(list) do
      if rank(e) == 1 then base = rate(e) end
      if rank(e) == 4 then floors[e.runtime] = rate(e) end
    end
    for i, e in ipairs(list) do
      local ratio = base and rate(e) / base
      local floor = floors[e.runtime]
      local vs_floor = floor and rank(e) ~= 4 and rank(e) ~= 1 and rate(e) / floor
      local row = cells(i, name, e, div, unit, ratio)
      row[#row + 1] = vs_floor and string.format("%.2fx", vs_floor) or "-"
      rows[#rows + 1] = row
      if rank(e) == 2 and name ~= "large" then note("tables", vs_floor, name, e.runtime) end
      if rank(e) == 2 and name == "large" then note("large", ratio, name, e.runtime) end
      if rank(e) == 3 and name ~= "large" then note("flat", ratio, name, e.runtime) end
    end
  end
  print_table({ "corpus", "parser", "runtime", "events/s", "MB/s", "vs eventsource-parser", "vs table floor" }, rows)
  local goals = {
    { "tables", "agentruns.sse (a table per event) >= 0.90x the table floor on the small and crlf corpora", 0.9 },
    { "flat", "agentruns.sse feed_flat (no table per event) >= 1.00x eventsource-parser on small and crlf", 1.0 },
    { "large", "agentruns.sse >= 1.00x eventsource-parser on large events", 1.0 },
  }
  for _, g in ipairs(goals) do
    local low = lowest[g[1]]
    if low then
      print(string.format("goal: %s, both interpreters -- %s (lowest %.2fx: %s, %s)", g[2],
                          verdict(low.ratio >= g[3]), low.ratio, low.corpus, low.runtime))
    else
      print(string.format("goal: %s -- not measured (a row is missing)", g[2]))
    end
  end
  if #read_order > 0 then
    print()
    print("the same corpora read from their files in chunks of the same size, as a stream's consumer gets " ..
          "them (node decodes each read with StringDecoder); median (min-max)")
    local read_rows, low = {}, nil
    for _, name in ipairs(read_order) do
      local list = read[name]
      local div, unit = arrange(list)
      local base = rank(list[1]) == 1 and rate(list[1]) or nil
      for i, e in ipairs(list) do
        local ratio = base and rate(e) / base
        read_rows[#read_rows + 1] = cells(i, name, e, div, unit, ratio)
        if rank(e) == 3 and name ~= "large" and ratio and (not low or ratio < low.ratio) then
          low = { ratio = ratio, corpus = name, runtime = e.runtime }
        end
      end
    end
    print_table({ "corpus", "parser", "runtime", "events/s", "MB/s", "vs eventsource-parser" }, read_rows)
    if low then
      print(string.format("goal, read from the file: agentruns.sse feed_flat >= 1.00x eventsource-parser on small " ..
                          "and crlf, both interpreters -- %s (lowest %.2fx: %s, %s)", verdict(low.ratio >= 1.0),
                          low.ratio, low.corpus, low.runtime))
    end
  end
  if #linear > 0 then
    print()
    print("one 8 MB event fed whole vs in 8193 feeds of 1 KB (median of 3; a ratio near 1 = linear buffering)")
    local lrows = {}
    for _, r in ipairs(linear) do
      local whole, chunked = tonumber(r[4]), tonumber(r[5])
      lrows[#lrows + 1] = { r[2], r[3], string.format("%.1f ms", whole * 1e3), string.format("%.1f ms", chunked * 1e3),
                            string.format("%.2f", chunked / whole) }
    end
    print_table({ "parser", "runtime", "whole", "1 KB chunks", "ratio" }, lrows)
    local worst
    for _, r in ipairs(linear) do
      local ratio = tonumber(r[5]) / tonumber(r[4])
      if r[2] == "agentruns.sse" and (not worst or ratio > worst.ratio) then
        worst = { ratio = ratio, runtime = r[3] }
      end
    end
    if worst then
      print(string.format("goal: agentruns.sse in 1 KB feeds <= 1.5x the whole event, both interpreters -- %s " ..
                          "(highest %.2fx, %s)", verdict(worst.ratio <= 1.5), worst.ratio, worst.runtime))
    end
  end
end

function report.requests()
  -- request  label  runtime  wall_us,...  cpu_us,...
  local base_wall, base_cpu
  for _, r in ipairs(records) do
    if r[3] == "C" then base_wall, base_cpu = median(numbers(r[4])), median(numbers(r[5] or "")) end
  end
  local function order(r)
    if r[3] == "C" then return 0 end
    return median(numbers(r[4]))
  end
  table.sort(records, function(a, b) return order(a) < order(b) end)
  -- worst.wall / worst.cpu = { ratio =, runtime = }: get_run's highest of each against the C loop
  local rows, worst = {}, {}
  local function note(what, ratio, runtime)
    if ratio and (not worst[what] or ratio > worst[what].ratio) then
      worst[what] = { ratio = ratio, runtime = runtime }
    end
  end
  for _, r in ipairs(records) do
    local wall, cpu = numbers(r[4]), numbers(r[5] or "")
    local ratio = base_wall and median(wall) / base_wall
    local cpu_ratio = #cpu > 0 and base_cpu and median(cpu) / base_cpu or nil
    rows[#rows + 1] = { r[2], r[3], spread(wall, "%.1f"), ratio and string.format("%.2fx", ratio) or "-",
                        #cpu > 0 and spread(cpu, "%.1f") or "-",
                        cpu_ratio and string.format("%.2fx", cpu_ratio) or "-" }
    if r[2] == "agentruns get_run" then
      note("wall", ratio, r[3])
      note("cpu", cpu_ratio, r[3])
    end
  end
  print_table({ "client", "runtime", "wall us/request", "vs C loop", "client CPU us/request", "vs C loop" }, rows)
  if worst.wall and worst.cpu then
    print(string.format("goal: agentruns get_run (JSON decode included) within 1.3x of the C loop in wall time " ..
                        "and in client CPU, both interpreters -- %s (highest %.2fx wall, %s; %.2fx CPU, %s)",
                        verdict(worst.wall.ratio <= 1.3 and worst.cpu.ratio <= 1.3), worst.wall.ratio,
                        worst.wall.runtime, worst.cpu.ratio, worst.cpu.runtime))
  else
    print("goal: agentruns get_run within 1.3x of the C loop -- not measured (a row is missing)")
  end
end

function report.gather()
  local groups, order = {}, {}
  for _, r in ipairs(records) do
    local key = r[2] .. "\0" .. r[3]
    if not groups[key] then
      groups[key] = { server = r[2], runtime = r[3] }
      order[#order + 1] = key
    end
    groups[key][r[4]] = numbers(r[6])
    groups[key].calls = tonumber(r[5]) > 1 and tonumber(r[5]) or groups[key].calls
  end
  local rows, goal_ok, worst = {}, true, nil
  for _, key in ipairs(order) do
    local g = groups[key]
    local one = g.one and median(g.one)
    local function ratio(list) return one and list and string.format("%.2fx", median(list) / one) or "-" end
    rows[#rows + 1] = { g.server, g.runtime, g.one and spread(g.one, "%.3f") or "-",
                        g.gathered and spread(g.gathered, "%.3f") or "-", ratio(g.gathered),
                        g.sequential and spread(g.sequential, "%.2f") or "-", ratio(g.sequential) }
    if one and g.gathered then
      local r = median(g.gathered) / one
      if r > 1.25 then goal_ok = false end
      if not worst or r > worst.ratio then worst = { ratio = r, server = g.server, runtime = g.runtime } end
    end
  end
  print_table({ "server", "runtime", "one call s", "50 gathered s", "vs one", "50 sequential s", "vs one" }, rows)
  if worst then
    print(string.format("goal: 50 calls gathered within 1.25x of one call -- %s (highest %.2fx: %s, %s)",
                        verdict(goal_ok), worst.ratio, worst.server, worst.runtime))
  end
end

function report.memory()
  -- memory  what  runtime  size  baseline_kb  peak_kb  items  seconds  data_bytes  complete|stopped
  local rows = {}
  local goal_ok, any_stopped, worst = true, false, 0
  for _, r in ipairs(records) do
    local baseline, peak = tonumber(r[5]) / 1024, tonumber(r[6]) / 1024
    local items, seconds, data_mb = tonumber(r[7]), tonumber(r[8]), tonumber(r[9]) / MB
    local stream = r[2] == "stream_events"
    local growth = peak - baseline
    local complete = r[10] == "complete"
    if not complete then any_stopped = true end
    if growth >= 16 then goal_ok = false end
    if growth > worst then worst = growth end
    rows[#rows + 1] = { r[2], r[3], r[4], complete and r[7] or (r[7] .. " (stopped)"),
                        stream and string.format("%.0f", data_mb) or "-", string.format("%.2f", seconds),
                        string.format("%.0f", items / seconds),
                        stream and string.format("%.1f", data_mb / seconds) or "-",
                        string.format("%.1f", baseline), string.format("%.1f", peak), string.format("%.1f", growth) }
  end
  print_table({ "walk", "runtime", "size", "items", "data MB", "seconds", "items/s", "data MB/s", "RSS before MB",
                "peak RSS MB", "growth MB" }, rows)
  if any_stopped then
    print("(stopped): the walk hit its time limit before its end; the row shows what it had received by then")
  end
  if #rows > 0 then
    print(string.format("goal: growth < 16 MB, independent of size -- %s (largest growth %.1f MB%s)",
                        verdict(goal_ok and not any_stopped), worst,
                        any_stopped and "; not every walk reached its size, so size independence is not shown" or ""))
  end
end

function report.streams()
  -- streams  runtime  n  rss_per_stream_kb  cpu_us_per_event  p50_ms  p99_ms  events  complete|incomplete
  local rows, by_runtime, order = {}, {}, {}
  local rss_ok, p99_ok, cpu_ok, all_complete = true, true, true, true
  local worst_rss, worst_p99, worst_cpu = 0, 0, 0
  for _, r in ipairs(records) do
    local runtime, n = r[2], tonumber(r[3])
    local rss, cpu, p99 = tonumber(r[4]), tonumber(r[5]), tonumber(r[7])
    if not by_runtime[runtime] then
      by_runtime[runtime] = {}
      order[#order + 1] = runtime
    end
    by_runtime[runtime][n] = cpu
    if r[9] ~= "complete" then all_complete = false end
    if rss > 64 then rss_ok = false end
    if rss > worst_rss then worst_rss = rss end
    if n >= 1000 then
      if p99 > 10 then p99_ok = false end
      if p99 > worst_p99 then worst_p99 = p99 end
    end
    rows[#rows + 1] = { runtime, r[3], r[8] .. (r[9] == "complete" and "" or " (incomplete)"), r[4], r[5], r[6], r[7] }
  end
  if #rows == 0 then return end
  print_table({ "client", "streams", "events", "RSS KB/stream", "CPU us/event", "latency p50 ms", "p99 ms" }, rows)
  local ratios = {}
  for _, runtime in ipairs(order) do
    local cpu = by_runtime[runtime]
    if cpu[100] and cpu[1000] then
      local ratio = cpu[1000] / cpu[100]
      if ratio > 1.5 then cpu_ok = false end
      if ratio > worst_cpu then worst_cpu = ratio end
      ratios[#ratios + 1] = string.format("%s %.2fx", runtime, ratio)
    end
  end
  print("CPU per event at 1,000 streams over that at 100: " .. table.concat(ratios, ", "))
  print(string.format("goal: <= 64 KB RSS per open stream -- %s (highest %.1f KB)", verdict(rss_ok), worst_rss))
  print(string.format("goal: p99 <= 10 ms at 1,000 streams -- %s (highest %.2f ms)", verdict(p99_ok), worst_p99))
  print(string.format("goal: CPU per event at 1,000 within 1.5x of 100 -- %s (highest %.2fx)", verdict(cpu_ok),
                      worst_cpu))
  if not all_complete then print("(incomplete): a run hit the 60 s limit or lost events") end
end

function report.neovim()
  local gaps, ticks, secs, ok = {}, {}, {}, true
  for i, r in ipairs(records) do
    gaps[i], ticks[i], secs[i] = tonumber(r[2]), tonumber(r[3]), tonumber(r[4])
    if r[7] ~= "true" then ok = false end
  end
  if #gaps == 0 then return end
  print_table({ "runs", "max timer gap ms", "ticks", "seconds", "all finished" },
              { { tostring(#gaps), spread(gaps, "%.1f"), spread(ticks, "%d"), spread(secs, "%.2f"), tostring(ok) } })
  print(string.format("(a 50 ms uv timer; spec/neovim_spec.lua requires the gap to stay under 100 ms -- %s)",
                      verdict(median(gaps) < 100 and ok)))
end

local fn = report[section]
if not fn then error("unknown section " .. section) end
fn()
