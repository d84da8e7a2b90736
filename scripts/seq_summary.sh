#!/usr/bin/env bash
# One method's summary row from its accuracy matrix (scripts/sequence.sh writes both):
# "METHOD,avg_accuracy,forgetting,backward_transfer" to 4 places.  Leaves the training,
# the matrix and the table to sequence.sh.
# Usage: scripts/seq_summary.sh METHOD MATRIX.csv
#   MATRIX.csv: header "after,T1,...,Tn", then n rows "Ti,R[i][1],...,R[i][i],,..." with
#   R[i][j] = top-1 on task j after training task i (empty for j > i).
# With R[n] the last row: ACC = mean_j R[n][j];
#   forgetting = mean_{j<n} (max_{j<=i<n} R[i][j] - R[n][j]);  BWT = mean_{j<n} (R[n][j] - R[j][j])
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 METHOD MATRIX.csv" >&2; exit 2; }
[ -f "$2" ] || { echo "seq_summary: no matrix $2" >&2; exit 1; }
awk -F, -v m="$1" -v file="$2" 'NR==1{cols=NF-1; next}
    {r=NR-1; if(NF!=cols+1){bad=1; exit} for(j=2;j<=NF;j++) R[r,j-1]=$j; n=r}
    END{if(bad || n<2 || n!=cols){printf "seq_summary: %s is not a square matrix of at least 2 tasks\n", file > "/dev/stderr"; exit 1}
        acc=0; for(j=1;j<=n;j++) acc+=R[n,j]; acc/=n; f=0; b=0
        for(j=1;j<n;j++){mx=0; for(i=j;i<n;i++) if(R[i,j]>mx) mx=R[i,j]; f+=mx-R[n,j]; b+=R[n,j]-R[j,j]}
        printf "%s,%.4f,%.4f,%.4f\n", m, acc, f/(n-1), b/(n-1)}' "$2"
