# The state that later steps of matrix.yaml change.
set -e
mkdir -p /t && cd /t
for f in modify chmod_only chown_only chown_nobody mtime_only xattr_only del_file renback cp_chmod cp_mv lowerlink ren_file target; do echo "$f" > $f; done
chmod 644 cp_chmod
cp /bin/true capbin
mkdir -p del_tree/x/y && echo 1 > del_tree/x/y/f
mkdir -p recreate_later/old recreate_same/old && echo old > recreate_later/old/f && echo old > recreate_same/old/f
mkdir -p rmstar/a rmall/a && touch rmstar/a/1 rmstar/f rmall/f
mkdir -p ren_dir/sub && echo c > ren_dir/sub/c
ln -s target symre
echo ten > ten && for i in 1 2 3 4 5 6 7 8 9; do ln ten ten.$i; done
mkdir setbits
for d in rendir_back rendir_chain rendir_edit rendir_away; do
  mkdir -p $d/sub/deep && echo a > $d/a && echo b > $d/sub/b && ln -s a $d/sym && cp /bin/true $d/cap
  setcap cap_net_raw+ep $d/cap && python3 -c "import os; os.setxattr('$d/a', 'user.test', b'kept')"
done
