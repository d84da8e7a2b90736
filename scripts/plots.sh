#!/usr/bin/env bash
# Pictures with gnuplot (Debian's gnuplot-nox), written as PNG:
#   scripts/plots.sh log <train.log.csv> <out.png>        loss per task over iterations,
#                                                       the warm-up / joint boundary marked
#   scripts/plots.sh matrix <matrix.csv> <out.png>        an accuracy matrix as a heat map
#   scripts/plots.sh sequence <OUT> <out.png> [methods]   each task's accuracy over a
#                                                       sequence (scripts/sequence.sh), a line per method
#   scripts/plots.sh average <OUT> <out.png> [methods]    a -grow sequence's top-1 over all the
#                                                       classes seen after each step (solid) and
#                                                       on the old classes (dashed), per method
# Names and paths never enter gnuplot's command text (where backquotes and '...'.system()
# would run commands): data files are copied into a private folder, names and that folder
# reach gnuplot as string variables set with -e from escaped single-quoted values, and the
# picture is moved onto <out.png> by the shell.
set -euo pipefail
command -v gnuplot > /dev/null || { echo "plots: gnuplot is missing (make deps)" >&2; exit 1; }
mode=${1:-}
die() { echo "plots: $*" >&2; exit 1; }
tmp=$(mktemp -d)
part=""
trap 'rm -rf "$tmp"; [ -z "$part" ] || rm -f -- "$part"' EXIT

# gpvar NAME VALUE: appends "NAME='VALUE';" to $vars, VALUE as a gnuplot single-quoted string
# (no substitution inside; a quote is doubled).  A control character (a newline would end the
# -e command) is refused.
vars=""
gpvar() {
    [[ $2 != *[[:cntrl:]]* ]] || die "a control character in '$2': not given to gnuplot"
    vars+="$1='${2//\'/\'\'}';"
}
gpvar tmp "$tmp"

case $mode in
log)
    [ $# -eq 3 ] || die "usage: plots.sh log <log.csv> <out.png>"
    log=$2 out=$3
    [ -s "$log" ] || die "$log: missing or empty"
    cp -- "$log" "$tmp/log.csv"
    # the loss columns: from 9 to the last named *_loss (after them, -valid's *_top1 columns)
    ncol=$(head -1 "$log" | awk -F, '{n = 8; for (i = 9; i <= NF; i++) if ($i ~ /_loss$/) n = i; print n}')
    boundary=$(awk -F, 'NR>1 && $3=="joint"{print $1; exit}' "$log")
    [[ $boundary =~ ^[0-9]+$ ]] || boundary=""
    {
        echo "set terminal pngcairo size 900,500"
        echo "set output tmp.'/out.png'"
        echo "set datafile separator ','; set datafile missing ''"
        echo "set termoption noenhanced"
        echo "set key autotitle columnhead outside right"
        echo "set xlabel 'iteration'; set ylabel 'loss (per image)'; set grid"
        echo "set title 'LwF training: loss per task'"
        [ -n "$boundary" ] && echo "set arrow from $boundary, graph 0 to $boundary, graph 1 nohead dt 2 lw 2 lc rgb 'gray30'" &&
            echo "set label 'warm-up | joint' at $boundary, graph 0.95 center offset 0,0.5"
        echo "plot for [c=9:$ncol] tmp.'/log.csv' using 1:c with lines lw 1.5, tmp.'/log.csv' using 1:4 with lines lw 1 lc rgb 'black' title 'total'"
    } > "$tmp/p.gp"
    ;;
matrix)
    [ $# -eq 3 ] || die "usage: plots.sh matrix <matrix.csv> <out.png>"
    m=$2 out=$3
    [ -s "$m" ] || die "$m: missing or empty"
    # rows: after task i; columns: task j; empty cells (not seen yet) left blank
    awk -F, 'NR==1{next} {i=NR-2; for(j=2;j<=NF;j++) if($j!="") printf "%d %d %.4f\n", j-2, i, $j*100}' "$m" > "$tmp/cells"
    n=$(head -1 "$m" | awk -F, '{print NF-1}')
    xt="" yt=""
    for ((j = 0; j < n; j++)); do
        gpvar "x$j" "$(head -1 "$m" | cut -d, -f$((j + 2)))"
        xt+="${xt:+, }x$j $j"
    done
    i=0
    while IFS= read -r row; do
        gpvar "y$i" "after ${row%%,*}"
        yt+="${yt:+, }y$i $i"
        i=$((i + 1))
    done < <(tail -n +2 "$m")
    gpvar title "accuracy matrix: $(basename "$(dirname "$m")") (top-1 %)"
    {
        echo "set terminal pngcairo size 700,600"
        echo "set output tmp.'/out.png'"
        echo "set termoption noenhanced"
        echo "set title title"
        echo "set xtics ($xt) rotate by -30; set ytics ($yt)"
        echo "set xrange [-0.5:$n-0.5]; set yrange [$n-0.5:-0.5]"
        echo "set cbrange [0:100]; set palette defined (0 'white', 50 '#fdae61', 100 '#1a9641')"
        echo "set xlabel 'task evaluated'; set ylabel 'after training'"
        echo "plot tmp.'/cells' using 1:2:(0.5):(0.5):3 with boxxy fs solid fc palette notitle, \\"
        echo "     '' using 1:2:(sprintf('%.1f', \$3)) with labels notitle"
    } > "$tmp/p.gp"
    ;;
sequence)
    [ $# -ge 3 ] || die "usage: plots.sh sequence <OUT> <out.png> [methods]"
    dir=$2 out=$3 methods=${4:-"lwf finetune featext joint"}
    first="" k=0 have=()
    for m in $methods; do
        [ -s "$dir/$m/matrix.csv" ] || continue
        [ -n "$first" ] || first=$m
        cp -- "$dir/$m/matrix.csv" "$tmp/m$k.csv"
        gpvar "meth$k" "$m"
        have+=("$k")
        k=$((k + 1))
    done
    [ -n "$first" ] || die "$dir: no <method>/matrix.csv"
    n=$(head -1 "$dir/$first/matrix.csv" | awk -F, '{print NF-1}')
    cols=$(( n < 3 ? n : 3 )); rows=$(( (n + cols - 1) / cols ))
    {
        echo "set terminal pngcairo size $((cols * 380)),$((rows * 300 + 40))"
        echo "set output tmp.'/out.png'"
        echo "set datafile separator ','; set datafile missing ''"
        echo "set termoption noenhanced"
        echo "set multiplot layout $rows,$cols title 'accuracy of each task over the sequence'"
        echo "set yrange [0:100]; set grid; set key bottom left; set xlabel 'after training task'; set ylabel 'top-1 %'"
        for ((j = 1; j <= n; j++)); do
            gpvar "name$j" "$(head -1 "$dir/$first/matrix.csv" | cut -d, -f$((j + 1)))"
            echo "set title name$j; set xrange [0.8:$n.2]; set xtics 1"
            plot="plot "
            # 'using 0' counts rows from 0 after the header skip: shift by one
            for q in "${have[@]}"; do
                plot+="tmp.'/m$q.csv' every ::1 using (\$0+1):(\$$((j + 1))*100) with linespoints lw 2 title meth$q, "
            done
            echo "${plot%, }"
        done
        echo "unset multiplot"
    } > "$tmp/p.gp"
    ;;
average)
    [ $# -ge 3 ] || die "usage: plots.sh average <OUT> <out.png> [methods]"
    dir=$2 out=$3 methods=${4:-"lwf finetune featext joint"}
    k=0 plot="plot "
    for m in $methods; do
        [ -s "$dir/$m/average.csv" ] || continue
        # after,step,classes,all,old,new: all and old in %, x = the step
        awk -F, 'NR>1{printf "%d %.4f %s\n", $2, $4*100, ($5 == "" ? "?" : sprintf("%.4f", $5*100))}' \
            "$dir/$m/average.csv" > "$tmp/a$k.dat"
        gpvar "meth$k" "$m"
        gpvar "old$k" "$m: old classes"
        plot+="tmp.'/a$k.dat' using 1:2 with linespoints lw 2 lc $((k + 1)) title meth$k, "
        plot+="tmp.'/a$k.dat' using 1:3 with linespoints lw 1 dt 2 lc $((k + 1)) title old$k, "
        k=$((k + 1))
    done
    [ "$k" -gt 0 ] || die "$dir: no <method>/average.csv (a sequence.sh -grow run)"
    {
        echo "set terminal pngcairo size 1000,450"
        echo "set output tmp.'/out.png'"
        echo "set termoption noenhanced"
        echo "set datafile missing '?'"
        echo "set title 'one grown head: top-1 over all classes seen (solid), over the old ones (dashed)'"
        echo "set yrange [0:100]; set grid; set key outside right; set xtics 1"
        echo "set xlabel 'after training task (two classes each)'; set ylabel 'top-1 %'"
        echo "${plot%, }"
    } > "$tmp/p.gp"
    ;;
*)
    die "usage: plots.sh log|matrix|sequence|average ..."
    ;;
esac
gnuplot -e "$vars" "$tmp/p.gp" || die "gnuplot failed on $tmp/p.gp"
# beside the output, then renamed: a reader never sees half a picture
part=$(mktemp -- "$out.XXXXXX.part") || die "$out: cannot write beside it"
cp -- "$tmp/out.png" "$part"
mv -f -- "$part" "$out"
part=""
echo "plots: wrote $out"
