# Every change of one step (see matrix.yaml).
set -e
cd /t
echo changed > modify
chmod 600 chmod_only
chown 42:42 chown_only
chown 65534:65534 chown_nobody
touch -d '1975-06-01 00:00:00' mtime_only
python3 -c "import os; os.setxattr('xattr_only', 'user.test', b'value')"
setcap cap_net_raw+ep capbin
rm del_file && rm -rf del_tree
rm -rf recreate_same && mkdir -p recreate_same/new && echo new > recreate_same/new/g
rm -rf recreate_later
rm -rf rmstar/* && rm -rf rmall
mv ren_file ren_file2 && mv ren_dir ren_dir2
mv renback renback.tmp && mv renback.tmp renback
chmod 644 cp_chmod
mv cp_mv cp_mv2 && mv cp_mv2 cp_mv
ln -sfn target2 symre && ln -s nowhere dangling && ln -s loop1 loop2 && ln -s loop2 loop1
mkdir newhard && echo h > newhard/a && ln newhard/a newhard/b
ln lowerlink lowerlink.new
mkfifo fifo
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('/t/sock')"
touch setbits/suid setbits/sgid && chmod 4755 setbits/suid && chmod 2755 setbits/sgid
mkdir setbits/sticky && chmod 1777 setbits/sticky
echo gone > tmpfile && rm tmpfile && mkdir tmpdir && touch tmpdir/x && rm -rf tmpdir
truncate -s 1G sparse && yes | head -c 4096 | dd of=sparse bs=4096 seek=1000 conv=notrunc status=none
long=$(python3 -c "print('/'.join(['d' * 100] * 3))") && mkdir -p "$long" && echo deep > "$long/f"
python3 -c "open(b'/t/name-\xff\xfe', 'w').write('x')"
mv rendir_back rendir_back.tmp && mv rendir_back.tmp rendir_back
mv rendir_chain c1 && mv c1 c2 && mv c2 rendir_chain
mv rendir_edit e && mv e rendir_edit && echo edited > rendir_edit/sub/b && rm rendir_edit/a
mv rendir_away rendir_away.old && mkdir rendir_away && echo new > rendir_away/n
