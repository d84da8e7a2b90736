#!/usr/bin/env bash
# Pictures with gnuplot (Debian's gnuplot-nox), written as PNG:
#   scripts/plots.sh log <train.log.csv> <out.png>        loss per task over iterations,
#                                                       the warm-up / joint boundary marked
#   scripts/plots.sh matrix <matrix.csv> <out.png>        an accuracy matrix as a heat map
#   scripts/plots.sh sequence <OUT> <out.png> [methods]   each task's accuracy over a
#                                                       sequence (scripts/sequence.sh), a line per method
set -euo pipefail
command -v gnuplot > /dev/null || { echo "plots: gnuplot is missing (make deps)" >&2; exit 1; }
mode=${1:-}
die() { echo "plots: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case $mode in
log)
    [ $# -eq 3 ] || die "usage: plots.sh log <log.csv> <out.png>"
    log=$2 out=$3
    [ -s "$log" ] || die "$log: missing or empty"
    ncol=$(head -1 "$log" | awk -F, '{print NF}')
    boundary=$(awk -F, 'NR>1 && $3=="joint"{print $1; exit}' "$log")
    {
        echo "set terminal pngcairo size 900,500"
        echo "set output '$out.tmp'"
        echo "set datafile separator ','; set datafile missing ''"
        echo "set termoption noenhanced"
        echo "set key autotitle columnhead outside right"
        echo "set xlabel 'iteration'; set ylabel 'loss (per image)'; set grid"
        echo "set title 'LwF training: loss per task'"
        [ -n "$boundary" ] && echo "set arrow from $boundary, graph 0 to $boundary, graph 1 nohead dt 2 lw 2 lc rgb 'gray30'" &&
            echo "set label 'warm-up | joint' at $boundary, graph 0.95 center offset 0,0.5"
        echo "plot for [c=9:$ncol] '$log' using 1:c with lines lw 1.5, '$log' using 1:4 with lines lw 1 lc rgb 'black' title 'total'"
    } > "$tmp/p.gp"
    ;;
matrix)
    [ $# -eq 3 ] || die "usage: plots.sh matrix <matrix.csv> <out.png>"
    m=$2 out=$3
    [ -s "$m" ] || die "$m: missing or empty"
    # rows: after task i; columns: task j; empty cells (not seen yet) left blank
    awk -F, 'NR==1{for(j=2;j<=NF;j++) name[j-1]=$j; n=NF-1; next}
             {i=NR-2; for(j=2;j<=NF;j++) if($j!="") printf "%d %d %.4f\n", j-2, i, $j*100}' "$m" > "$tmp/cells"
    n=$(head -1 "$m" | awk -F, '{print NF-1}')
    xt=$(head -1 "$m" | awk -F, '{for(j=2;j<=NF;j++) printf "%s\"%s\" %d", (j>2?", ":""), $j, j-2}')
    yt=$(awk -F, 'NR>1{printf "%s\"after %s\" %d", (NR>2?", ":""), $1, NR-2}' "$m")
    title=$(basename "$(dirname "$m")")
    {
        echo "set terminal pngcairo size 700,600"
        echo "set output '$out.tmp'"
        echo "set termoption noenhanced"
        echo "set title 'accuracy matrix: $title (top-1 %)'"
        echo "set xtics ($xt) rotate by -30; set ytics ($yt)"
        echo "set xrange [-0.5:$n-0.5]; set yrange [$n-0.5:-0.5]"
        echo "set cbrange [0:100]; set palette defined (0 'white', 50 '#fdae61', 100 '#1a9641')"
        echo "set xlabel 'task evaluated'; set ylabel 'after training'"
        echo "plot '$tmp/cells' using 1:2:(0.5):(0.5):3 with boxxy fs solid fc palette notitle, \\"
        echo "     '' using 1:2:(sprintf('%.1f', \$3)) with labels notitle"
    } > "$tmp/p.gp"
    ;;
sequence)
    [ $# -ge 3 ] || die "usage: plots.sh sequence <OUT> <out.png> [methods]"
    dir=$2 out=$3 methods=${4:-"lwf finetune featext joint"}
    first=""
    for m in $methods; do [ -s "$dir/$m/matrix.csv" ] && first=$m && break; done
    [ -n "$first" ] || die "$dir: no <method>/matrix.csv"
    n=$(head -1 "$dir/$first/matrix.csv" | awk -F, '{print NF-1}')
    cols=$(( n < 3 ? n : 3 )); rows=$(( (n + cols - 1) / cols ))
    {
        echo "set terminal pngcairo size $((cols * 380)),$((rows * 300 + 40))"
        echo "set output '$out.tmp'"
        echo "set datafile separator ','; set datafile missing ''"
        echo "set termoption noenhanced"
        echo "set multiplot layout $rows,$cols title 'accuracy of each task over the sequence'"
        echo "set yrange [0:100]; set grid; set key bottom left; set xlabel 'after training task'; set ylabel 'top-1 %'"
        for ((j = 1; j <= n; j++)); do
            name=$(head -1 "$dir/$first/matrix.csv" | cut -d, -f$((j + 1)))
            echo "set title '$name'; set xrange [0.8:$n.2]; set xtics 1"
            plot="plot "
            for m in $methods; do
                [ -s "$dir/$m/matrix.csv" ] || continue
                plot+="'$dir/$m/matrix.csv' every ::1 using 0:(\$$((j + 1))*100) with linespoints lw 2 title '$m', "
            done
            # 'using 0' counts rows from 0 after the header skip: shift by one
            echo "${plot%, }" | sed 's/using 0:/using ($0+1):/g'
        done
        echo "unset multiplot"
    } > "$tmp/p.gp"
    ;;
*)
    die "usage: plots.sh log|matrix|sequence ..."
    ;;
esac
gnuplot "$tmp/p.gp" || die "gnuplot failed on $tmp/p.gp"
mv "$out.tmp" "$out"
echo "plots: wrote $out"
