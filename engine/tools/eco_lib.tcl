# noodle2 ECO library for OpenSTA 2.0.17 (Tcl API facts: ../shared/TOOLS.md).
# Each n2_eco_* proc edits the linked design through OpenSTA and returns how many changes it
# made.  Slacks from the vertex API are in seconds.  New objects are named after $n2_tag
# (the case id) so that chained ECOs never collide.

proc n2_port_name {pin} { return [lindex [split [get_full_name $pin] /] end] }

proc n2_worst_ends {paths} {
  return [find_timing_paths -path_delay max -group_count $paths -endpoint_count 1 \
            -unique_paths_to_endpoint -slack_max 0.0]
}

# Driver pins on the worst paths, worst path first, each once; top-level ports excluded.
proc n2_path_drivers {paths} {
  set seen [dict create]
  set out {}
  foreach pe [n2_worst_ends $paths] {
    foreach pin [[$pe path] pins] {
      if {[$pin is_driver] && ![$pin is_top_level_port]} {
        set name [get_full_name $pin]
        if {![dict exists $seen $name]} { dict set seen $name 1; lappend out $pin }
      }
    }
  }
  return $out
}

proc n2_pin_slack {pin} {
  set v [lindex [$pin vertices] 0]
  if {$v eq ""} { return 1e30 }
  return [expr {min([lindex [$v slacks rise] 1], [lindex [$v slacks fall] 1])}]
}

proc n2_loads {net} {
  set out {}
  set it [$net pin_iterator]
  while {[$it has_next]} {
    set p [$it next]
    if {[$p is_load] && ![$p is_top_level_port]} { lappend out $p }
  }
  $it finish
  return [lsort -command n2_cmp_name $out]
}

proc n2_cmp_name {a b} { return [string compare [get_full_name $a] [get_full_name $b]] }

# An instance's pins that answer 1 to `kind` (is_driver or is_load).
proc n2_pins {inst kind} {
  set out {}
  set it [$inst pin_iterator]
  while {[$it has_next]} { set p [$it next]; if {[$p $kind]} { lappend out $p } }
  $it finish
  return $out
}

proc n2_outputs {inst} { return [n2_pins $inst is_driver] }
proc n2_inputs {inst} { return [n2_pins $inst is_load] }

# Sizes of a cell family, e.g. INV -> {{1 INVX1} {2 INVX2} {4 INVX4} {8 INVX8}}.
proc n2_sizes {base} {
  set out {}
  foreach lc [get_lib_cells */${base}X*] {
    set n [get_name $lc]
    if {[regexp "^${base}X(\[0-9\]+)\$" $n -> s]} { lappend out [list $s $n] }
  }
  return [lsort -integer -index 0 $out]
}

# Move an instance one size up (dir 1) or down (dir -1) within its family; 1 on change.
proc n2_resize {inst dir} {
  set cell [get_property $inst ref_name]
  if {![regexp {^(.*?)X([0-9]+)$} $cell -> base size]} { return 0 }
  set sizes [n2_sizes $base]
  set i [lsearch -exact -index 0 $sizes $size]
  set j [expr {$i + $dir}]
  if {$i < 0 || $j < 0 || $j >= [llength $sizes]} { return 0 }
  return [replace_cell $inst [lindex $sizes $j 1]]
}

proc n2_eco_noop {} { return 0 }

# Upsizing a driver speeds its stage but loads the stage before it; each resize is kept only
# when incremental timing says the worst slack or the total negative slack improved.
proc n2_eco_resize_critical {paths max_cells} {
  set n 0
  set wns [sta::worst_slack -max]
  set tns [sta::total_negative_slack -max]
  foreach pin [n2_path_drivers $paths] {
    if {$n >= $max_cells} { break }
    set inst [$pin instance]
    set was [get_property $inst ref_name]
    if {![n2_resize $inst 1]} { continue }
    set w [sta::worst_slack -max]
    set t [sta::total_negative_slack -max]
    if {($w > $wns + 1e-6 && $t >= $tns - 1e-6) || ($w >= $wns - 1e-6 && $t > $tns + 1e-6)} {
      set wns $w
      set tns $t
      incr n
    } else {
      replace_cell $inst [lindex [get_lib_cells */$was] 0]
    }
  }
  return $n
}

proc n2_eco_downsize_noncritical {margin_ps max_cells} {
  set margin [expr {$margin_ps * 1e-12}]
  set cands {}
  foreach inst [get_cells *] {
    set worst 1e30
    foreach p [n2_outputs $inst] { set worst [expr {min($worst, [n2_pin_slack $p])}] }
    if {$worst > $margin && $worst < 1e29} { lappend cands [list $worst [get_full_name $inst]] }
  }
  # most slack first; names break ties so the order never depends on memory layout
  set cands [lsort -real -decreasing -index 0 [lsort -index 1 $cands]]
  set n 0
  foreach c $cands {
    if {$n >= $max_cells} { break }
    incr n [n2_resize [get_cells [lindex $c 1]] -1]
  }
  return $n
}

proc n2_eco_upsize_all {margin_ps} {
  set margin [expr {$margin_ps * 1e-12}]
  set cands {}
  foreach inst [get_cells *] {
    set worst 1e30
    foreach p [n2_outputs $inst] { set worst [expr {min($worst, [n2_pin_slack $p])}] }
    if {$worst < $margin} { lappend cands [get_full_name $inst] }
  }
  set n 0
  foreach c [lsort $cands] { incr n [n2_resize [get_cells $c] 1] }
  return $n
}

proc n2_strongest {base} { return [lindex [lindex [n2_sizes $base] end] 1] }

# Driver pins on the worst paths whose nets reach at least `min_fanout` loads, each net once,
# as {pin net_name off_path_loads}: the candidates for buffering and for cloning.
proc n2_fanout_candidates {paths min_fanout} {
  set out {}
  set done [dict create]
  foreach pe [n2_worst_ends $paths] {
    set pins [[$pe path] pins]
    set onpath [dict create]
    foreach p $pins { dict set onpath [get_full_name $p] 1 }
    foreach p $pins {
      if {![$p is_driver] || [$p is_top_level_port]} { continue }
      set net [$p net]
      if {$net eq "NULL"} { continue }
      set nname [get_full_name $net]
      if {[dict exists $done $nname]} { continue }
      dict set done $nname 1
      set loads [n2_loads $net]
      if {[llength $loads] < $min_fanout} { continue }
      set off {}
      foreach l $loads { if {![dict exists $onpath [get_full_name $l]]} { lappend off $l } }
      lappend out [list $p $nname $off]
    }
  }
  return $out
}

proc n2_move_loads {from to loads} {
  foreach l $loads {
    set lname [get_full_name $l]
    disconnect_pin $from $lname
    connect_pin $to $lname
  }
}

proc n2_eco_buffer_fanout {paths min_fanout max_nets} {
  global n2_tag
  set buf [lindex [get_lib_cells */[n2_strongest BUF]] 0]
  set n 0
  foreach c [n2_fanout_candidates $paths $min_fanout] {
    if {$n >= $max_nets} { break }
    lassign $c pin nname off
    if {[llength $off] < 2} { continue }
    set b "n2buf_${n2_tag}_$n"
    set bnet "n2bufnet_${n2_tag}_$n"
    make_instance $b $buf
    make_net $bnet
    connect_pin $nname $b/A
    connect_pin $bnet $b/Y
    n2_move_loads $nname $bnet $off
    incr n
  }
  return $n
}

proc n2_eco_clone_driver {paths min_fanout max_clones} {
  global n2_tag
  set n 0
  foreach c [n2_fanout_candidates $paths $min_fanout] {
    if {$n >= $max_clones} { break }
    lassign $c pin nname off
    set inst [$pin instance]
    set move [lrange $off [expr {[llength $off] / 2}] end]
    if {[llength [n2_outputs $inst]] != 1 || [llength $move] < 1} { continue }
    set clone "n2clone_${n2_tag}_$n"
    set cnet "n2clonenet_${n2_tag}_$n"
    make_instance $clone [lindex [get_lib_cells */[get_property $inst ref_name]] 0]
    foreach ip [n2_inputs $inst] {
      set inet [$ip net]
      if {$inet ne "NULL"} { connect_pin [get_full_name $inet] $clone/[n2_port_name $ip] }
    }
    make_net $cnet
    connect_pin $cnet $clone/[n2_port_name $pin]
    n2_move_loads $nname $cnet $move
    incr n
  }
  return $n
}

# Commutative input groups by cell family.
proc n2_commutative {cell} {
  if {[regexp {^(NAND2|NOR2|AND2|OR2|XOR2|XNOR2)X} $cell]} { return {A B} }
  if {[regexp {^(NAND3|NOR3)X} $cell]} { return {A B C} }
  return {}
}

proc n2_swap_nets {inst a b} {
  set name [get_full_name $inst]
  set na [get_full_name [[get_pins $name/$a] net]]
  set nb [get_full_name [[get_pins $name/$b] net]]
  disconnect_pin $na $name/$a
  disconnect_pin $nb $name/$b
  connect_pin $nb $name/$a
  connect_pin $na $name/$b
}

# The on-path (late) input moves to each other commutative pin in turn; a swap is kept only
# when the instance's output slack improves, as measured by incremental timing.
proc n2_eco_pin_swap {paths max_swaps} {
  set n 0
  set seen [dict create]
  foreach pe [n2_worst_ends $paths] {
    foreach p [[$pe path] pins] {
      if {$n >= $max_swaps} { return $n }
      if {![$p is_load] || [$p is_top_level_port]} { continue }
      set inst [$p instance]
      set iname [get_full_name $inst]
      if {[dict exists $seen $iname]} { continue }
      dict set seen $iname 1
      set group [n2_commutative [get_property $inst ref_name]]
      set late [n2_port_name $p]
      if {[lsearch -exact $group $late] < 0} { continue }
      set out [lindex [n2_outputs $inst] 0]
      set best [n2_pin_slack $out]
      set kept 0
      foreach other $group {
        if {$other eq $late || [[get_pins $iname/$other] net] eq "NULL"} { continue }
        n2_swap_nets $inst $late $other
        set s [n2_pin_slack $out]
        if {$s > $best + 1e-13} { set best $s; set late $other; set kept 1 } else { n2_swap_nets $inst $late $other }
      }
      incr n $kept
    }
  }
  return $n
}

# --- integrity and measurement -------------------------------------------------------------

# Nets with loads but no driver: loads moved there become unconstrained and timing "improves"
# for nothing.  A net's pin iterator omits top-level ports in 2.0.17, so an input port is
# matched by the net's name.
proc n2_undriven_nets {} {
  set out {}
  foreach net [get_nets *] {
    set drivers 0
    set loads 0
    set it [$net pin_iterator]
    while {[$it has_next]} {
      set p [$it next]
      if {[$p is_driver]} { incr drivers } elseif {[$p is_load]} { incr loads }
    }
    $it finish
    if {$loads > 0 && $drivers == 0} {
      set port [get_ports -quiet [get_full_name $net]]
      if {$port eq "" || [get_property $port direction] eq "output"} { lappend out [get_full_name $net] }
    }
  }
  return $out
}

proc n2_unconstrained_endpoints {} {
  sta::redirect_string_begin
  check_setup -unconstrained_endpoints
  set text [sta::redirect_string_end]
  if {[regexp {There (?:are|is) ([0-9]+) unconstrained endpoint} $text -> n]} { return $n }
  return 0
}

proc n2_failing_endpoints {} {
  return [llength [find_timing_paths -path_delay max -group_count 1000000 -endpoint_count 1 \
                     -unique_paths_to_endpoint -slack_max 0.0]]
}

# Metrics go to their own file (n2m.txt), so a tool that floods stdout cannot hide or fake them.
proc n2_metric {key value} {
  global n2_mfile
  if {![info exists n2_mfile]} { set n2_mfile [open n2m.txt w] }
  puts $n2_mfile "N2M $key $value"
  flush $n2_mfile
}

# An SDC read in a safe interpreter that holds only SDC commands (guarded and locked domains):
# no exec, no open, no source.  A failure prints "Error:", which fails the trial as tool_error.
proc n2_read_sdc_safe {file commands} {
  set f [open $file r]
  set text [read $f]
  close $f
  set i [interp create -safe]
  foreach c $commands { interp alias $i $c {} $c }
  interp limit $i commands -value 10000000
  set rc [catch {$i eval $text} msg]
  interp delete $i
  if {$rc} { puts "Error: SDC [file tail $file]: $msg" }
}

proc n2_report {file paths power} {
  sta::redirect_file_begin $file.timing.rpt
  report_checks -path_delay max -group_count $paths -endpoint_count 1 -unique_paths_to_endpoint \
    -fields {fanout cap} -digits 3
  sta::redirect_file_end
  sta::redirect_file_begin $file.wns.rpt
  report_wns -digits 3
  report_tns -digits 3
  sta::redirect_file_end
  if {$power} {
    sta::redirect_file_begin $file.power.rpt
    report_power -digits 6
    sta::redirect_file_end
  }
}
