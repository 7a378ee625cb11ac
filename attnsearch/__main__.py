from attnsearch.cli import main

main()
